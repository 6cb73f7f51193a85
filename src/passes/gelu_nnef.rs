//! Pass (archives): an NNEF form for `GeluExact`.
//!
//! Why: decluttering fuses the export's `Erf`-based GELU into `GeluExact`, and tract-nnef has
//! a serializer for `GeluApproximate` only, so writing an archive fails with "No serializer
//! found for … GeluExact". This registers `bert_edge_gelu_exact` (a parameterless
//! element-wise op) both ways, so archives keep the exact GELU the model was trained with.

use tract_core::ops::nn::GeluExact;
use tract_nnef::internal::*;

/// Adds `bert_edge_gelu_exact` to `registry`.
pub(crate) fn register(registry: &mut Registry) {
    registry.register_unit_element_wise("bert_edge_gelu_exact", &GeluExact {});
}
