//! Shapes and roles of a translated model's inputs and outputs, at capacity.

use super::signature::{role_of, OutputInfo};
use crate::error::{Error, Result};
use tract_core::internal::*;

/// The name of the sequence-length symbol of a plan of any length.
pub(crate) const SEQ_SYMBOL: &str = "S";

/// The shape of output `ix` at capacity (`S` = `n`), and whether it has a sequence axis
/// (axis 1 is `S`: one row of values per position). Any other use of `S` is refused: the
/// caller's buffers could not hold it.
pub(crate) fn capacity_shape(
    model: &TypedModel,
    ix: usize,
    name: &str,
    n: usize,
) -> Result<(Vec<usize>, bool)> {
    let fact = model.output_fact(ix).map_err(Error::Engine)?;
    let bad = || {
        Error::bad_model(format!(
            "output {name} has shape {:?}: bert-edge lays outputs out as [batch, …] or \
             [batch, seq, …] with the inputs' batch and sequence axes",
            fact.shape
        ))
    };
    let Some(s) = model.symbols.get(SEQ_SYMBOL) else {
        let shape = fact.shape.as_concrete().ok_or_else(bad)?;
        return Ok((shape.to_vec(), false));
    };
    let mut per_token = false;
    let mut shape = Vec::with_capacity(fact.rank());
    for (axis, d) in fact.shape.iter().enumerate() {
        if let Some(v) = d.as_i64() {
            shape.push(v as usize);
        } else if axis == 1 && *d == TDim::Sym(s.clone()) {
            per_token = true;
            shape.push(n);
        } else {
            return Err(bad());
        }
    }
    Ok((shape, per_token))
}

/// Rows a tract run of the model takes: its first input's batch axis. Equal to
/// [`PlanInfo::batch`], or 1 for an int8 plan of batch > 1, whose rows run one by one (each
/// at its own length, each with its own quantization ranges).
pub(crate) fn model_batch(model: &TypedModel) -> Result<usize> {
    let fact = model.input_fact(0).map_err(Error::Engine)?;
    fact.shape
        .iter()
        .next()
        .and_then(|d| d.as_i64())
        .map(|b| b as usize)
        .ok_or_else(|| Error::bad_model(format!("input batch axis of {:?}", fact.shape)))
}

/// Every output of a translated model: name, role, shape at capacity (`dims` = batch, N,
/// hidden; batch first even when the model runs rows one by one).
pub(crate) fn read_outputs(
    model: &TypedModel,
    dims: (usize, usize, usize),
    vocab: Option<usize>,
) -> Result<Vec<OutputInfo>> {
    let rows = model_batch(model)?;
    let mut outputs = Vec::with_capacity(model.outputs.len());
    for (ix, o) in model.outputs.iter().enumerate() {
        let name = output_name(model, *o).to_string();
        let (mut shape, _) = capacity_shape(model, ix, &name, dims.1)?;
        let role = role_of(&name, &shape, (rows, dims.1, dims.2), vocab);
        if role.is_some() {
            shape[0] = dims.0;
        }
        outputs.push(OutputInfo { role, name, shape });
    }
    Ok(outputs)
}

/// The name of a model output: its label if it has one, else its node's name.
pub(crate) fn output_name(model: &TypedModel, o: OutletId) -> &str {
    model
        .outlet_label(o)
        .unwrap_or(model.node(o.node).name.as_str())
}
