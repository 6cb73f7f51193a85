//! Reading the ONNX protobuf, and what the import looks up in it.

use crate::error::{Error, Result};
use std::path::Path;
use tract_onnx::pb;
use tract_onnx::prelude::*;

pub(super) fn read_proto(path: &Path) -> Result<pb::ModelProto> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    tract_onnx::onnx()
        .proto_model_for_read(&mut file)
        .map_err(|e| {
            Error::bad_model(format!(
                "{} is not an ONNX model (protobuf: {e})",
                path.display()
            ))
        })
}

pub(super) fn initializer<'a>(g: &'a pb::GraphProto, name: &str) -> Option<&'a pb::TensorProto> {
    g.initializer.iter().find(|t| t.name == name)
}

/// The initializer feeding a `Gather` whose indices are the graph input `input`.
pub(crate) fn gather_table<'a>(
    g: &'a pb::GraphProto,
    input: &str,
) -> Option<(&'a pb::NodeProto, &'a pb::TensorProto)> {
    g.node.iter().find_map(|n| {
        (n.op_type == "Gather" && n.input.get(1).map(|s| s.as_str()) == Some(input))
            .then(|| {
                n.input
                    .first()
                    .and_then(|t| initializer(g, t))
                    .map(|t| (n, t))
            })
            .flatten()
    })
}

/// The element type the graph declares for input `name` (`None` if it declares none).
pub(super) fn declared_type(g: &pb::GraphProto, name: &str) -> Option<DatumType> {
    let i = g.input.iter().find(|i| i.name == name)?;
    let pb::type_proto::Value::TensorType(t) = i.r#type.as_ref()?.value.as_ref()?;
    Some(match t.elem_type {
        1 => DatumType::F32,
        2 => DatumType::U8,
        3 => DatumType::I8,
        4 => DatumType::U16,
        5 => DatumType::I16,
        6 => DatumType::I32,
        7 => DatumType::I64,
        10 => DatumType::F16,
        12 => DatumType::U32,
        13 => DatumType::U64,
        _ => return None,
    })
}
