//! `pettycash-load`: drives a running `pettycash serve` over HTTP with a mixed workload and
//! reports per-endpoint counts, latency percentiles and throughput. See `pettycash-load --help`
//! and `docs/performance.md` ("HTTP load").

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = pettycash_tests::load::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pettycash-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pettycash_tests::load::run(args)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pettycash-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
