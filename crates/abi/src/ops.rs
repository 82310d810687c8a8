//! Every operation that crosses the boundary, by number. The guest exports one entry point,
//! `gears_enter(op, ptr, len)`, and imports one host function, `gears.host(op, ptr, len,
//! reply_ptr, reply_len)`; `op` is one of the codes below. The Python side has the same
//! tables (`wasm/gears/gears_abi.py`); `vectors/codec.json` pins both.

macro_rules! op_table {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $code,)*
        }

        impl $name {
            /// Every operation, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The operation with this code.
            pub fn from_code(code: u32) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Its code on the wire (for guest entries, before any flag is or-ed in).
            pub fn code(self) -> u32 {
                self as u32
            }

            /// Its name (as in the Python table and the vectors).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

/// Or-ed into a guest entry's code when `ProfileExecutions` is on: the guest profiles the
/// entry without asking the host for the setting (one host call less on every event).
pub const ENTRY_PROFILE_FLAG: u32 = 0x100;

/// The bits of an entry's code that name the entry (the rest are flags).
pub const ENTRY_CODE_MASK: u32 = 0xff;

op_table! {
    /// What the host asks the guest to do (`gears_enter`). Payloads are argument encodings
    /// unless said otherwise; every entry but `Reseed` answers through `gears_out_*`.
    GuestEntry {
        /// Gives the session its own `random` state. Payload empty.
        Reseed = 1, "reseed";
        /// Runs a script's top level. Payload: the script's source (raw bytes).
        ExecScript = 2, "exec_script";
        /// Runs a flow the script created with `run()`. Payload: the execution id (raw).
        RunExecution = 3, "run_execution";
        /// A CommandReader registration fired: `[registration id, trigger or command, args...]`.
        RunTrigger = 4, "run_trigger";
        /// A KeysReader registration fired: `[registration id, key, event]`, then, when the
        /// host read the key as the event fired, `[type]` and a string's `[value]`.
        KeyEvent = 5, "key_event";
        /// A StreamReader batch: `[registration id, key, after id, count, trim, policy]`.
        StreamBatch = 6, "stream_batch";
        /// A time event ticked: `[event id]`.
        TimeEvent = 7, "time_event";
        /// A timer of the session's event loop is due. Payload empty.
        Loop = 8, "loop";
        /// Abort the records waiting on a deferred token: `[token]`.
        Cancel = 9, "cancel";
        /// Abort the waiting records of a registration: `[registration id]`.
        CancelRegistration = 10, "cancel_registration";
        /// `RG.PYPROFILE`: `[subcommand, args...]`.
        Profile = 11, "profile";
        /// Decodes and re-encodes the golden vectors inside the guest. Payload: the vectors
        /// JSON; output: the failures, one per line (empty when all pass).
        SelfTest = 12, "self_test";
        /// A created flow about to run on every shard: `[execution id]` (raw); output its
        /// number of moves and plan bytes, or nothing when it stays on this shard.
        ExportPlan = 13, "export_plan";
        /// A peer's distributed run arrived: `[execution id, plan bytes]`.
        ImportPlan = 14, "import_plan";
        /// One stage of a distributed run: `[execution id, stage, routing, input parts...]`.
        RunStage = 15, "run_stage";
        /// This shard's part of a distributed run is dropped: `[execution id]` (raw).
        ForgetPlan = 16, "forget_plan";
        /// The script's registrations for the other shards: `[ids...]`; output the script
        /// that registers them there.
        ExportRegistrations = 17, "export_registrations";
        /// A registration's run on every shard: `[execution id, registration id, args...]`.
        PlanRegistered = 18, "plan_registered";
    }
}

op_table! {
    /// What the guest asks the host for (`gears.host`). Requests are argument encodings
    /// (`CallBatch`: a batch); every reply is one value.
    HostRequest {
        /// `execute()`: one Redis command. Reply: the command's reply.
        Call = 1, "call";
        /// Several commands under one acquisition of the Redis lock. Reply: an array.
        CallBatch = 2, "call_batch";
        /// Enter (`["1"]`) or leave (`["0"]`) an `atomic()` block.
        Atomic = 3, "atomic";
        /// `log()`: `[level 0-3, message]`.
        Log = 4, "log";
        /// `configGet()`: `[name]`. Reply: bulk, or null when unknown.
        ConfigGet = 5, "config_get";
        /// `run()` at a script's top level: the flow's plan. Reply: the execution id.
        CreateExecution = 6, "create_execution";
        /// `register()`: a [`crate::RegistrationSpec`]. Reply: the registration id.
        CreateRegistration = 7, "create_registration";
        /// The command a hook or `commands=` registration runs within. Reply: its args.
        GetCommand = 8, "get_command";
        /// `override_reply()`: `[encoded value]`.
        OverrideReply = 9, "override_reply";
        /// `call_next()` in a hook: `[args...]` (the command name is the hooked one).
        CallNext = 10, "call_next";
        /// `registerTE()`: `[seconds, key name, has key "0"/"1"]`. Reply: the id, 0 if the
        /// key exists.
        TimeEvent = 11, "time_event";
        /// The entry's circumstances. Reply: `[on main thread, records may wait]`.
        Entry = 12, "entry";
        /// The entry's results will come later. Reply: the deferred token.
        Defer = 13, "defer";
        /// Results of an earlier deferred entry: `[token, encoded results]`.
        Complete = 14, "complete";
        /// Run the session's event loop again in `[ms]`.
        Wake = 15, "wake";
        /// The script's requirements. Reply: `[[name, wheel bytes]...]`.
        Requirements = 16, "requirements";
        /// A KeysReader's batch: `[key...]`. Reply: per key `[type, value]`, what `TYPE` and
        /// the value's command (`GET`, `HGETALL`, `LRANGE 0 -1`; null for other types) would
        /// answer the session, refusals as error replies.
        ReadKeys = 17, "read_keys";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_names_are_unique() {
        for op in GuestEntry::ALL {
            assert_eq!(GuestEntry::from_code(op.code()), Some(*op));
        }
        for op in HostRequest::ALL {
            assert_eq!(HostRequest::from_code(op.code()), Some(*op));
        }
        let mut names: Vec<_> = HostRequest::ALL.iter().map(|o| o.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), HostRequest::ALL.len());
        assert_eq!(HostRequest::from_code(0), None);
        assert_eq!(GuestEntry::from_code(99), None);
        for op in GuestEntry::ALL {
            assert_eq!(op.code() & ENTRY_CODE_MASK, op.code(), "{op:?} leaves room for the flags");
            assert_eq!(GuestEntry::from_code((op.code() | ENTRY_PROFILE_FLAG) & ENTRY_CODE_MASK), Some(*op));
        }
    }
}
