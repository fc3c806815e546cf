//! Runs a scripted model server (a test double) until Ctrl-C, answering every request with
//! the default reply, and prints its base URL and the matching `KILO_CONFIG_CONTENT`.
//! Useful to point a hand-started `kilo serve` at it, or to check that a container reaches
//! it on the Docker bridge's gateway address:
//!
//! ```sh
//! cargo run -p gastown-scripted-model --example serve -- 127.0.0.1:0
//! cargo run -p gastown-scripted-model --example serve -- 172.17.0.1:0
//! ```

use std::net::SocketAddr;

use gastown_scripted_model::ScriptedModelServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned())
        .parse()?;
    let server = ScriptedModelServer::start(addr).await?;
    println!("base_url {}", server.base_url());
    println!("KILO_CONFIG_CONTENT={}", server.config_content());
    tokio::signal::ctrl_c().await?;
    println!("requests {}", server.request_count());
    server.shutdown().await;
    Ok(())
}
