//! `recon-es-emulator`: serves the Elasticsearch-API emulator until killed. The first line of stdout is
//! the bound URL, so scripts can start it on port 0 and read where it listens.

use std::io::Write;

use clap::Parser;
use recon_es_emulator::{Emulator, EmulatorConfig, FaultSpec, Flavor};

#[derive(Parser, Debug)]
#[command(
    name = "recon-es-emulator",
    about = "An in-memory emulator of the Elasticsearch REST API subset recon uses"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9200")]
    listen: String,
    /// Which product to pretend to be: elasticsearch or opensearch.
    #[arg(long, default_value = "elasticsearch")]
    flavor: Flavor,
    /// Faults to inject, e.g. `reject=0.1,latency=20ms,only=search` (see docs/emulator.md).
    #[arg(long, default_value = "")]
    faults: FaultSpec,
    /// Seed for the fault decisions and generated ids.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let config = EmulatorConfig {
            flavor: args.flavor,
            faults: args.faults,
            seed: args.seed,
        };
        let emulator = Emulator::start(&args.listen, config).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", emulator.url())?;
        out.flush()?;
        drop(out);
        tokio::signal::ctrl_c().await?;
        emulator.shutdown().await;
        Ok(())
    })
}
