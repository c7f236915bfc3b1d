//! Serves an emulator until Ctrl-C, for poking at it by hand:
//! `cargo run -p plumbline-sim --example serve -- [PORT] [KUBECONFIG] [CRD.yaml...]`.

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), plumbline_sim::SimError> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let kubeconfig = PathBuf::from(args.next().unwrap_or_else(|| "sim.kubeconfig".into()));
    let mut crds = Vec::new();
    for path in args {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap_or_default();
        crds.extend(docs);
    }
    plumbline_sim::run_api_only(([127, 0, 0, 1], port).into(), &kubeconfig, crds).await
}
