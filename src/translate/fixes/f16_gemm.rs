//! Fix: the f16 export's pooler `Gemm` comes out of tract typed as f32.
//!
//! Why: tract-onnx 0.23.9 expands `Gemm` into `EinSum` + `Mul(beta, C)` + `Add`, and builds
//! the `alpha`/`beta` constants as f32 whatever the graph's float type. In an f16 graph the
//! `Mul(f32 beta, f16 C)` then fails to type (or promotes the pooler to f32).
//! How: before tract parses the graph, rewrite every `Gemm` with `alpha == beta == 1` as
//! `[Transpose] → MatMul → Add`, which is the same computation in any float type.
//! A `Gemm` with other coefficients is left alone (none occur in BERT exports).

use tract_onnx::pb;

fn attr_f(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.f)
        .unwrap_or(default)
}

fn attr_i(n: &pb::NodeProto, name: &str) -> i64 {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.i)
        .unwrap_or(0)
}

fn node(name: String, op: &str, input: Vec<String>, output: String) -> pb::NodeProto {
    pb::NodeProto {
        name,
        op_type: op.into(),
        input,
        output: vec![output],
        ..Default::default()
    }
}

fn transpose(name: &str, input: &str) -> (pb::NodeProto, String) {
    let out = format!("{name}.transposed");
    let mut n = node(
        out.clone(),
        "Transpose",
        vec![input.to_string()],
        out.clone(),
    );
    n.attribute.push(pb::AttributeProto {
        name: "perm".into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: vec![1, 0],
        ..Default::default()
    });
    (n, out)
}

/// Rewrites the unit-coefficient `Gemm`s of `proto`; returns how many were rewritten.
pub fn apply(proto: &mut pb::ModelProto) -> usize {
    let Some(g) = proto.graph.as_mut() else {
        return 0;
    };
    let mut out = Vec::with_capacity(g.node.len() + 8);
    let mut count = 0;
    for n in g.node.drain(..) {
        let unit = attr_f(&n, "alpha", 1.0) == 1.0 && attr_f(&n, "beta", 1.0) == 1.0;
        if n.op_type != "Gemm" || !unit || n.input.len() < 2 || n.output.len() != 1 {
            out.push(n);
            continue;
        }
        count += 1;
        let base = if n.name.is_empty() {
            n.output[0].clone()
        } else {
            n.name.clone()
        };
        let mut a = n.input[0].clone();
        let mut b = n.input[1].clone();
        if attr_i(&n, "transA") != 0 {
            let (t, o) = transpose(&format!("{base}.a"), &a);
            out.push(t);
            a = o;
        }
        if attr_i(&n, "transB") != 0 {
            let (t, o) = transpose(&format!("{base}.b"), &b);
            out.push(t);
            b = o;
        }
        match n.input.get(2).filter(|c| !c.is_empty()) {
            Some(c) => {
                let ab = format!("{base}.matmul");
                out.push(node(ab.clone(), "MatMul", vec![a, b], ab.clone()));
                out.push(node(
                    format!("{base}.add"),
                    "Add",
                    vec![ab, c.clone()],
                    n.output[0].clone(),
                ));
            }
            None => out.push(node(
                format!("{base}.matmul"),
                "MatMul",
                vec![a, b],
                n.output[0].clone(),
            )),
        }
    }
    g.node = out;
    count
}
