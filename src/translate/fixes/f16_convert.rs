//! tract's own f32 → f16 conversion of an f32 graph (the second f16 route).
//!
//! Kept in f32: LayerNorm-style reductions and Softmax, whose sums of many terms lose
//! too much in half precision; everything else (matmuls, element-wise) goes to f16.
//! Inputs and outputs stay f32, like the onnxconverter-common route (`keep_io_types`).

use tract_core::floats::FloatPrecisionTranslator;
use tract_core::internal::*;
use tract_core::transform::ModelTransform;

/// Converts `model` in place.
pub fn apply(model: &mut TypedModel) -> TractResult<()> {
    let keep_f32 = |node: &TypedNode| {
        let op = node.op.name();
        !(op.contains("Reduce") || op.contains("Softmax") || op.contains("LayerNorm"))
    };
    FloatPrecisionTranslator::with_filter(f32::datum_type(), f16::datum_type(), keep_f32)
        .transform(model)
}
