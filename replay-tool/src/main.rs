//! `pettycash-replay`: the auditor and ops tool (verify, ledger, balance, history, export,
//! rebuild, stats). Specified by the [replay] issue and not built yet: it exits with status 2
//! and says so, rather than pretending to verify anything.

fn main() {
    eprintln!("pettycash-replay: not implemented yet (see the [replay] issue); no checks were run");
    std::process::exit(2);
}
