//! A registration's counters (RG.DUMPREGISTRATIONS: numTriggered, numSuccess, numFailures,
//! numAborted, lastError, durations, a StreamReader's lag) and its runs listed as executions.

use crate::gears::registrations::{max_pending, with_registration, Stats};

/// A StreamReader batch's lag (age of its newest entry when processed).
pub fn record_lag(id: &str, lag_ms: u64) {
    with_registration(id, |r| {
        r.stats.last_lag_ms = lag_ms;
        r.stats.total_lag_ms += lag_ms;
    });
}

/// Counts one run of registration `id` and lists it as a registered execution (keeping the
/// registration's newest `MaxExecutionsPerRegistration`) with its results and errors, which
/// RG.GETRESULTS shows as RedisGears keeps them.
pub fn record_run(id: &str, ms: u64, results: Vec<wasmgears_abi::Reply>, errors: Vec<String>) {
    let keep = crate::runtime::settings::int(crate::runtime::config::MAX_EXECUTIONS_PER_REGISTRATION).max(0) as usize;
    let listed = with_registration(id, |r| {
        count_run(&mut r.stats, ms, errors.first().map(String::as_str));
        (keep > 0).then(|| {
            let execution_id = crate::gears::executions::next_id();
            r.executions.push_back(execution_id.clone());
            let excess = r.executions.len().saturating_sub(keep);
            (execution_id, r.executions.drain(..excess).collect::<Vec<_>>())
        })
    });
    if let Some(Some((execution_id, evict))) = listed {
        crate::gears::executions::add_registered(execution_id, ms, results, errors, evict);
    }
}

/// Counts a run as triggered, when its callback has returned (records that wait for async
/// steps are counted then; their success or failure when they finish).
pub fn record_trigger(id: &str) {
    with_registration(id, |r| r.stats.triggered += 1);
}

/// Counts a run whose execution is dropped once replied (RG.TRIGGER, hooks).
pub fn record_unlisted_run(id: &str, ms: u64, first_error: Option<&str>) {
    with_registration(id, |r| count_run(&mut r.stats, ms, first_error));
}

/// Counts how a run ended (`record_trigger` counted its start).
fn count_run(st: &mut Stats, ms: u64, first_error: Option<&str>) {
    st.last_ms = ms;
    st.total_ms += ms;
    match first_error {
        Some(e) => {
            st.failures += 1;
            st.last_error = Some(e.to_string());
        }
        None => st.success += 1,
    }
}

/// An event dropped because the registration's backlog is full: counted as aborted.
pub fn record_dropped(id: &str) {
    with_registration(id, |r| {
        r.stats.triggered += 1;
        r.stats.aborted += 1;
        r.stats.last_error = Some(format!("event dropped: more than {} pending (MaxPendingEvents)", max_pending()));
    });
}

/// RG.CLEARREGISTRATIONSSTATS.
pub fn clear_stats() {
    crate::gears::registrations::for_each_registration(|r| r.stats = Stats::default());
}
