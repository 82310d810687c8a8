"""The end-to-end fuzzer: a short smoke in `make test`, long runs with `make fuzz`
(FUZZ_CASES generated commands/scripts, FUZZ_SEED for a repeatable run)."""
import os

import fuzz_e2e


def test_fuzz_smoke(make_server):
    cases = int(os.environ.get("FUZZ_CASES", "400"))
    seed = int(os.environ["FUZZ_SEED"]) if "FUZZ_SEED" in os.environ else 1234
    srv = make_server("SandboxTimeLimitMS", "300")
    stats = fuzz_e2e.run(srv.port, cases=cases, seed=seed)
    print("e2e fuzz:", stats)
    assert stats["cases"] >= cases
    fuzz_e2e.check_canary(srv.client(decode_responses=False))
