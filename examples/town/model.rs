//! The mayor's model for the `town` example: the scripted model server (a test double of
//! an OpenAI-compatible provider) listening where the agents reach it, or a real provider
//! whose key is passed to kilo as a secret.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context};
use gastown::core::{ModelRef, ProviderConfig, Secret};
use gastown_scripted_model::ScriptedModelServer;

use crate::Args;

/// The second prompt, after the restart: its answer needs the resumed history.
pub(crate) const SECOND_PROMPT: &str = "We just restarted. What did I ask you before?";

/// The scripted model's answers (it cannot read the prompt; the example checks the history
/// it received instead).
pub(crate) const SCRIPTED_FIRST: &str =
    "Hello! I am the mayor of this town, answering through the \
scripted model (a test double: no network, no API key). I keep the town's session, browse \
its rigs and will dispatch work to its agents. Pass --model provider/model to talk to a \
real model.";
pub(crate) const SCRIPTED_SECOND: &str = "Welcome back. You asked me what I can do; this session \
came back from its snapshot with that turn in it.";

/// The mayor's model: the scripted server (a test double) or a real provider.
pub(crate) struct Model {
    /// `provider/model`.
    pub(crate) name: String,
    /// The provider entry and id to add to the town's config.
    pub(crate) provider: (String, ProviderConfig),
    /// The scripted server, when no real provider was asked for.
    pub(crate) scripted: Option<ScriptedModelServer>,
}

/// Checks, with the scripted server's record, that the turn after the restart was sent
/// with the first turn's prompt and answer: the resumed session kept its history.
pub(crate) fn resumed_history(server: &ScriptedModelServer, args: &Args) -> anyhow::Result<()> {
    // Compared as they appear inside the JSON of the recorded messages (escaped).
    let escaped = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let first_prompt = escaped(&args.prompt);
    let first_reply = escaped(SCRIPTED_FIRST);
    let with_history = server.requests().iter().any(|r| {
        let messages = serde_json::to_string(&r.messages).unwrap_or_default();
        [
            escaped(SECOND_PROMPT),
            first_prompt.clone(),
            first_reply.clone(),
        ]
        .iter()
        .all(|needle| messages.contains(needle.trim_matches('"')))
    });
    if !with_history {
        bail!("the turn after the restart did not carry the first turn: history lost");
    }
    if !args.json {
        println!("\nthe turn after the restart reached the model with the first prompt and reply in its history");
    }
    Ok(())
}

/// The scripted model server (listening where the agents reach it), or a real provider.
pub(crate) async fn model(args: &Args, gateway: Option<IpAddr>) -> anyhow::Result<Model> {
    if args.model.is_none() && args.provider_key.is_none() {
        let ip = gateway.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let server = ScriptedModelServer::start(SocketAddr::new(ip, 0))
            .await
            .with_context(|| format!("starting the scripted model server on {ip}"))?;
        let entry = gastown_scripted_model::provider_entry_for(&server.base_url());
        return Ok(Model {
            name: gastown_scripted_model::MODEL.to_owned(),
            provider: (
                gastown_scripted_model::PROVIDER_ID.to_owned(),
                ProviderConfig::new(entry),
            ),
            scripted: Some(server),
        });
    }
    let name = args
        .model
        .clone()
        .unwrap_or_else(|| gastown::core::config::DEFAULT_MODEL.to_owned());
    let provider = ModelRef::parse(&name)?.provider_id;
    let key = match &args.provider_key {
        Some(key) => key.clone(),
        None => key_vars(&provider)
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
            .with_context(|| {
                format!(
                    "no API key for provider {provider}: pass --provider-key or set {}",
                    key_vars(&provider).join(" or ")
                )
            })?,
    };
    // An entry with only the key: kilo merges it into its bundled provider of that id.
    let config = ProviderConfig::new(serde_json::json!({})).with_api_key(Secret::new(key));
    Ok(Model {
        name,
        provider: (provider, config),
        scripted: None,
    })
}

/// The usual variables holding a provider's key: `<PROVIDER>_API_KEY`, plus Google's.
fn key_vars(provider: &str) -> Vec<String> {
    let upper: String = provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut vars = vec![format!("{upper}_API_KEY")];
    if provider == "google" {
        vars.push("GOOGLE_GENERATIVE_AI_API_KEY".to_owned());
        vars.push("GEMINI_API_KEY".to_owned());
    }
    vars
}

/// The Docker bridge's gateway (the host as containers on the default bridge reach it):
/// the engine's `bridge` network, its IPAM gateway or else the first address of its
/// subnet; `172.17.0.1` (Docker's default) when the engine does not say.
#[cfg(feature = "docker")]
pub(crate) async fn bridge_gateway(docker: &bollard::Docker) -> IpAddr {
    let fallback = IpAddr::V4(Ipv4Addr::new(172, 17, 0, 1));
    let Ok(network) = docker.inspect_network("bridge", None).await else {
        return fallback;
    };
    let configs = network.ipam.and_then(|i| i.config).unwrap_or_default();
    let gateway = configs
        .iter()
        .find_map(|c| c.gateway.as_deref()?.parse::<Ipv4Addr>().ok());
    let first_of_subnet = || {
        configs.iter().find_map(|c| {
            let (net, _) = c.subnet.as_deref()?.split_once('/')?;
            let net: Ipv4Addr = net.parse().ok()?;
            Some(Ipv4Addr::from(u32::from(net) + 1))
        })
    };
    gateway
        .or_else(first_of_subnet)
        .map(IpAddr::V4)
        .unwrap_or(fallback)
}
