//! RM_Call replies as the guest gets them (`wasmgears_abi::Reply`), converted within a budget
//! of encoded bytes so that a reply past `SandboxMaxReplyMB` is refused while it is being
//! converted, not after it was copied whole.

use redis_module::{CallReply, CallResult};
use wasmgears_abi::Reply;

/// How many more bytes the converted reply may take once encoded for the guest: converting
/// stops as soon as it would pass `SandboxMaxReplyMB`, so a huge reply is refused before it
/// is copied (its tree and its encoding are each larger than the cap), not after.
pub(crate) struct ReplyBudget {
    left: usize,
}

/// The reply passed its budget: what was converted so far is dropped.
pub(crate) struct OverBudget;

impl ReplyBudget {
    pub(crate) fn for_guest() -> ReplyBudget {
        ReplyBudget { left: wasmgears_sandbox::limits::max_reply_bytes() }
    }

    pub(crate) fn unlimited() -> ReplyBudget {
        ReplyBudget { left: usize::MAX }
    }

    /// Counts `n` more encoded bytes (the sizes of `wasmgears_abi::Reply::encode`).
    fn spend(&mut self, n: usize) -> Result<(), OverBudget> {
        self.left = self.left.checked_sub(n).ok_or(OverBudget)?;
        Ok(())
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<Vec<u8>, OverBudget> {
        self.spend(5usize.saturating_add(b.len()))?; // tag, u32 length, bytes
        Ok(b.to_vec())
    }
}

/// The reply the guest gets instead of one past its cap.
pub(crate) fn past_cap() -> Reply {
    Reply::Error(format!("ERR {}", wasmgears_sandbox::limits::reply_past_cap()).into_bytes())
}

pub(crate) fn convert(result: &CallResult<'_>, budget: &mut ReplyBudget) -> Result<Reply, OverBudget> {
    match result {
        Ok(reply) => convert_reply(reply, budget),
        Err(err) => {
            let text = err.to_utf8_string().unwrap_or_else(|| "ERR unknown error".into());
            Ok(Reply::Error(budget.bytes(text.as_bytes())?))
        }
    }
}

fn convert_items<'a>(
    items: impl Iterator<Item = CallResult<'a>>,
    budget: &mut ReplyBudget,
) -> Result<Reply, OverBudget> {
    budget.spend(5)?; // tag, u32 count
    let mut out = Vec::new(); // grown as converted: a huge count reserves nothing up front
    for item in items {
        out.push(convert(&item, budget)?);
    }
    Ok(Reply::Array(out))
}

fn convert_reply(reply: &CallReply<'_>, budget: &mut ReplyBudget) -> Result<Reply, OverBudget> {
    Ok(match reply {
        CallReply::I64(i) => {
            budget.spend(9)?;
            Reply::Int(i.to_i64())
        }
        CallReply::String(s) => Reply::Bulk(budget.bytes(s.as_bytes())?),
        CallReply::Array(a) => convert_items(a.iter(), budget)?,
        CallReply::Null(_) | CallReply::Unknown => {
            budget.spend(1)?;
            Reply::Null
        }
        CallReply::Bool(b) => {
            budget.spend(9)?;
            Reply::Int(b.to_bool() as i64)
        }
        CallReply::Double(d) => {
            budget.spend(9)?;
            Reply::Double(d.to_double())
        }
        CallReply::Set(s) => convert_items(s.iter(), budget)?,
        CallReply::Map(m) => convert_items(m.iter().flat_map(|(k, v)| [k, v]), budget)?,
        CallReply::BigNumber(n) => Reply::Bulk(budget.bytes(n.to_string().unwrap_or_default().as_bytes())?),
        CallReply::VerbatimString(v) => Reply::Bulk(budget.bytes(v.as_parts().map(|(_, b)| b).unwrap_or_default())?),
    })
}
