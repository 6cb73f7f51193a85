//! Pass: the f16 export's pooler `Gemm` comes out of tract typed as f32.
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

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    const FLOAT16: i32 = 10;

    fn f16_value(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
        use pb::tensor_shape_proto::{dimension::Value, Dimension};
        let dim = dims
            .iter()
            .map(|d| Dimension {
                value: Some(Value::DimValue(*d)),
                ..Default::default()
            })
            .collect();
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: FLOAT16,
                    shape: Some(pb::TensorShapeProto { dim }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn f16_init(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: FLOAT16,
            raw_data: values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
            ..Default::default()
        }
    }

    /// `y = x · wᵀ + b` as a torch `Linear` exports it (`Gemm`, transB = 1), all in f16.
    fn linear_f16() -> pb::ModelProto {
        let mut gemm = node(
            "gemm".into(),
            "Gemm",
            vec!["x".into(), "w".into(), "b".into()],
            "y".into(),
        );
        gemm.attribute.push(pb::AttributeProto {
            name: "transB".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        });
        let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
        pb::ModelProto {
            ir_version: 7,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(pb::GraphProto {
                node: vec![gemm],
                initializer: vec![
                    f16_init("w", &[3, 4], &w),
                    f16_init("b", &[3], &[0.5, -0.5, 1.0]),
                ],
                input: vec![f16_value("x", &[1, 4])],
                output: vec![f16_value("y", &[1, 3])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run(proto: &pb::ModelProto) -> TractResult<Vec<f32>> {
        let model = tract_onnx::onnx()
            .model_for_proto_model(proto)?
            .into_typed()?;
        let x = tensor2(&[[1f32, 2.0, -1.0, 0.5]])
            .cast_to::<f16>()?
            .into_owned();
        let y = model.into_runnable()?.run(tvec![x.into_tvalue()])?;
        anyhow::ensure!(
            y[0].datum_type() == f16::datum_type(),
            "y is {:?}",
            y[0].datum_type()
        );
        let y = y[0].cast_to::<f32>()?;
        Ok(y.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
    }

    /// Without the rewrite tract cannot type the f16 `Gemm` (f32 coefficients against f16
    /// operands) or promotes it to f32; with it, the same values in f16.
    #[test]
    fn f16_gemm_stays_f16() {
        let proto = linear_f16();
        assert!(
            run(&proto).is_err(),
            "tract 0.23.9 is expected to fail on an f16 Gemm"
        );
        let mut fixed = proto.clone();
        assert_eq!(apply(&mut fixed), 1);
        let ops: Vec<&str> = fixed
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.as_str())
            .collect();
        assert_eq!(ops, ["Transpose", "MatMul", "Add"]);
        let y = run(&fixed).expect("the rewritten graph runs in f16");
        // x · wᵀ + b, rows of w: [-1, -0.75, -0.5, -0.25], [0, .25, .5, .75], [1, 1.25, 1.5, 1.75]
        assert_eq!(y, [-2.125 + 0.5, 0.375 - 0.5, 2.875 + 1.0]);
    }
}
