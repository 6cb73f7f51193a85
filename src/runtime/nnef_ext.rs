//! NNEF forms for ops tract 0.23.9 cannot serialize in a BERT plan (see also `dyn_quant`).
//!
//! GeluExact: decluttering fuses the export's `Erf`-based GELU into `GeluExact`, and tract-nnef has
//! a serializer for `GeluApproximate` only, so writing an archive fails with "No serializer
//! found for … GeluExact". This registers `bert_edge_gelu_exact` (a parameterless
//! element-wise op) both ways, so archives keep the exact GELU the model was trained with.

use tract_core::ops::nn::GeluExact;
use tract_nnef::internal::*;

/// The registry holding bert-edge's NNEF extensions.
pub fn registry() -> Registry {
    let mut r = Registry::new("bert_edge");
    r.register_unit_element_wise("bert_edge_gelu_exact", &GeluExact {});
    super::dyn_quant::register(&mut r);
    r
}
