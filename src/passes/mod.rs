//! Every graph rewrite bert-edge applies, one file each with its reason and its test.
//!
//! | pass | when | why |
//! |---|---|---|
//! | [`f16_gemm`] | ONNX import, f16 files (protobuf level) | tract types an f16 `Gemm`'s coefficients as f32 |
//! | [`ort_attention`] | ONNX import, onnxruntime-optimized files (protobuf level) | tract-onnx reads the fused `com.microsoft.Attention` as ONNX's own and panics |
//! | [`f16_convert`] | ONNX import, `variant(F16)` of an f32 file | tract's f32 → f16 conversion breaks the mask and the reductions |
//! | [`dequant_arith`] | ONNX import, int8 | `DequantizeLinearF32` has no NNEF form |
//! | [`dyn_quant`] | ONNX import, int8 | tract-onnx's `DynamicQuantizeLinear` has no NNEF form and lives in the importer |
//! | [`gelu_nnef`] | archives | `GeluExact` has no NNEF form |
//! | [`widen_f16`] | every load of an f16 plan on a CPU without f16 arithmetic | f16 emulated per op is 2–4× slower |
//! | [`fold`] | every load of an int8 plan | tract recomputes the int8 weights' column sums on every call |
//!
//! The `ignore_value_info` import option is not a rewrite: it makes tract-onnx skip the
//! `value_info` shapes the f16/int8 converters leave behind (see [`crate::unstable::Fixes`]).

#[cfg(feature = "onnx")]
pub mod dequant_arith;
pub mod dyn_quant;
#[cfg(feature = "onnx")]
pub mod f16_convert;
#[cfg(feature = "onnx")]
pub mod f16_gemm;
pub mod fold;
pub mod gelu_nnef;
#[cfg(feature = "onnx")]
pub mod ort_attention;
pub mod widen_f16;

/// The version of the default (`ai.onnx`) operator set an ONNX file imports. Here, not in
/// `translate`, because the protobuf-level passes need it too: translate uses passes, never
/// the other way.
#[cfg(feature = "onnx")]
pub(crate) fn default_opset(proto: &tract_onnx::pb::ModelProto) -> Option<i64> {
    proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
}

/// The NNEF registry holding bert-edge's own op forms ([`gelu_nnef`], [`dyn_quant`]).
pub(crate) fn nnef_registry() -> tract_nnef::internal::Registry {
    let mut r = tract_nnef::internal::Registry::new("bert_edge");
    gelu_nnef::register(&mut r);
    dyn_quant::register(&mut r);
    r
}
