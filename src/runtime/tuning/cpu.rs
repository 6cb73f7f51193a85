//! Which CPU this is, precisely enough to key measurements by: two machines that report the
//! same marketing name (`Intel(R) Xeon(R) Processor`) can be different cores.

/// The CPU, as `/proc/cpuinfo` names it: its model name with family, model and stepping on
/// x86, or implementer, part, variant and revision on ARM (`uname -m` where neither is
/// readable).
///
/// ```
/// let id = bert_edge::tuning::cpu_id();
/// assert!(!id.is_empty());
/// ```
pub fn cpu_id() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let x86 = ["cpu family", "model", "stepping"].map(field);
    let arm = ["CPU implementer", "CPU part", "CPU variant", "CPU revision"].map(field);
    let name = field("model name");
    let detail = if x86.iter().all(Option::is_some) {
        let [f, m, s] = x86.map(Option::unwrap_or_default);
        format!("family {f} model {m} stepping {s}")
    } else if arm[1].is_some() {
        let [i, p, v, r] = arm.map(Option::unwrap_or_default);
        format!("implementer {i} part {p} variant {v} revision {r}")
    } else {
        std::env::consts::ARCH.to_string()
    };
    match name {
        Some(n) => format!("{n} ({detail})"),
        None => detail,
    }
}
