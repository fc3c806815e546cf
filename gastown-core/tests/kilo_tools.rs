//! A real tool call in a worker's worktree: the REAL `kilo serve`, configured by the one env
//! builder as a polecat and pointed at the scripted model server (a test double of an
//! OpenAI-compatible provider, `gastown-scripted-model`), runs a scripted `bash` call that
//! writes a file and commits it on the bead's branch — unattended: no permission prompt
//! holds the turn. Skipped with a line on stderr when kilo is absent, unless
//! `GASTOWN_REQUIRE_KILO=1`. Boots ONE kilo (its own test binary, so it never runs next to
//! the servers of the other kilo tests).

mod real_kilo;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gastown_core::command::Word;
use gastown_core::env::{
    build_agent_env_with_providers, AgentEnvInput, AGENT_PATH, UNATTENDED_PERMISSIONS,
};
use gastown_core::kilo;
use gastown_core::sdk::{last_assistant_text, SdkEvent, SessionStatus, TurnError};
use gastown_core::{AgentId, ModelRef, ProviderConfig, Role, SdkLauncher, Secret, TownId};
use gastown_scripted_model::{
    Reply, ScriptedModelServer, BASH_TOOL, MODEL, PROVIDER_ID, TOOL_CALL_ID,
};
use real_kilo::Kilo;
use serde_json::Value;

/// A failure bound for the turn (a scripted tool turn takes seconds once kilo is up; the
/// machine is shared and slow). Not a timing assertion.
const TURN_GUARD: Duration = Duration::from_secs(120);
/// The bead's branch, as the `worktrees` phase names a polecat's branch.
const BRANCH: &str = "gt/polecat-1/bead-1";
/// What the scripted model has kilo's bash tool run: write a file, commit it. The identity
/// is on the command line because the agent's `HOME` has no git config.
const COMMAND: &str = "printf 'hello\\n' > hello.txt && git add hello.txt && git -c user.name=polecat -c user.email=polecat@gastown.invalid commit -q -m 'add hello'";
/// The scripted model's answer once the tool result comes back; it ends the turn.
const FINAL_TEXT: &str = "Committed hello.txt.";
/// The SSE event kilo 7.7.9 sends when a tool waits for a person's approval.
const PERMISSION_ASKED: &str = "permission.asked";

/// Runs git in `repo` with nothing from the host's git config (`HOME` = `home`, no system
/// config); returns its trimmed stdout, panicking with its stderr when it fails.
fn git(repo: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env_clear()
        .env("PATH", AGENT_PATH)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `KILO_CONFIG_CONTENT` of an agent of `role` whose provider is the scripted model.
fn config_of(role: Role, agent: &str, models: &ScriptedModelServer, password: &Secret) -> String {
    let providers = BTreeMap::from([(
        PROVIDER_ID.to_owned(),
        ProviderConfig::new(models.provider_entry()),
    )]);
    let env = build_agent_env_with_providers(
        &AgentEnvInput {
            town: &TownId::new("tools").unwrap(),
            agent: &AgentId::new(agent).unwrap(),
            role,
            launcher: &SdkLauncher::kilo(),
            model: MODEL,
            small_model: MODEL,
            password,
            token: &Secret::random(),
            credentials: &BTreeMap::new(),
        },
        &providers,
    );
    match &env.vars["KILO_CONFIG_CONTENT"] {
        Word::Text(config) => config.clone(),
        other => panic!("the config is plain text, got {other:?}"),
    }
}

/// What the event stream showed of the turn.
#[derive(Debug, Default)]
struct Turn {
    statuses: Vec<SessionStatus>,
    tool_parts: usize,
    permission_asked: bool,
    errors: Vec<TurnError>,
    idle: bool,
}

/// Reads `session`'s events until its `session.idle` after a `busy`, or a permission
/// prompt (which would hold the turn until someone answers), for at most [`TURN_GUARD`].
async fn follow(
    events: &mut futures::stream::BoxStream<'static, gastown_core::Result<SdkEvent>>,
    session: &str,
) -> Turn {
    let mut turn = Turn::default();
    let read = async {
        while !turn.idle && !turn.permission_asked {
            let event = events
                .next()
                .await
                .expect("the event stream ended during the turn")
                .expect("the event stream failed during the turn");
            match event {
                // `permission.asked` is not typed by the SDK client; its session is in
                // its properties, and this server runs one session only.
                SdkEvent::Other { kind } if kind == PERMISSION_ASKED => {
                    turn.permission_asked = true
                }
                e if e.session_id() != Some(session) => {}
                SdkEvent::SessionStatus { status, .. } => turn.statuses.push(status),
                SdkEvent::MessagePartUpdated { part_type, .. } if part_type == "tool" => {
                    turn.tool_parts += 1
                }
                SdkEvent::SessionError { error, .. } => turn.errors.push(error),
                SdkEvent::SessionIdle { .. } => {
                    turn.idle = turn.statuses.contains(&SessionStatus::Busy)
                }
                _ => {}
            }
        }
    };
    if tokio::time::timeout(TURN_GUARD, read).await.is_err() {
        panic!("the turn did not end within {TURN_GUARD:?}: {turn:?}");
    }
    turn
}

/// `GET path` on the server, as JSON.
async fn get_json(kilo: &Kilo, password: &Secret, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", kilo.base_url))
        .basic_auth("kilo", Some(password.expose()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The `ask` rules of `agent` (from `GET /agent`, kilo 7.7.9: each agent's `permission` is
/// a list of `{permission, pattern, action}`, the last matching rule wins) that no later
/// rule overrides for every input: an `ask` survives unless a later rule for the same
/// permission (or `*`) with the pattern `*` allows or denies.
fn surviving_asks(agents: &Value, agent: &str) -> Vec<Value> {
    let rules = agents
        .as_array()
        .expect("GET /agent is a list")
        .iter()
        .find(|a| a["name"] == agent)
        .unwrap_or_else(|| panic!("no agent {agent}"))["permission"]
        .as_array()
        .expect("an agent's permission is a rule list")
        .clone();
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r["action"] == "ask")
        .filter(|(i, r)| {
            !rules[i + 1..].iter().any(|later| {
                (later["permission"] == r["permission"] || later["permission"] == "*")
                    && later["pattern"] == "*"
                    && later["action"] != "ask"
            })
        })
        .map(|(_, r)| r.clone())
        .collect()
}

#[tokio::test]
async fn a_polecat_turn_runs_a_bash_call_unattended_and_commits_on_the_beads_branch() {
    let Some(bin) = kilo::test_binary() else {
        return;
    };
    let models = ScriptedModelServer::start_local().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let password = Secret::random();

    // The mayor keeps kilo's prompts and snapshots: only workers carry the overrides.
    let mayor: Value =
        serde_json::from_str(&config_of(Role::Mayor, "mayor", &models, &password)).unwrap();
    assert_eq!(mayor.get("permission"), None, "{mayor}");
    assert_eq!(mayor.get("snapshot"), None, "{mayor}");
    let config = config_of(Role::Polecat, "polecat-1", &models, &password);
    let parsed: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(parsed["permission"]["bash"], "allow", "{parsed}");

    // The worktree: a real repository, one commit on `main`, the bead's branch checked
    // out. `Kilo::start_with` runs kilo in `home/work`, so that is the repository.
    let repo = home.path().join("work");
    std::fs::create_dir_all(&repo).unwrap();
    let h = home.path();
    git(&repo, h, &["init", "-q", "-b", "main"]);
    git(
        &repo,
        h,
        &[
            "-c",
            "user.name=gastown",
            "-c",
            "user.email=gastown@gastown.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "root",
        ],
    );
    git(&repo, h, &["checkout", "-q", "-b", BRANCH]);
    let base = git(&repo, h, &["rev-parse", "HEAD"]);

    let extra: Vec<(String, String)> = SdkLauncher::kilo().env.into_iter().collect();
    let kilo = Kilo::start_with(&bin, home.path(), &password, &config, &extra).await;
    let client = kilo.client(&password);
    client
        .wait_healthy(Duration::from_secs(60), Duration::from_millis(50))
        .await
        .unwrap();
    // kilo applied the worker's permission rules and snapshot setting.
    let applied = get_json(&kilo, &password, "/config").await;
    assert_eq!(applied["permission"], parsed["permission"], "{applied}");
    assert_eq!(applied["snapshot"], false, "{applied}");
    // No rule of the default agent (`code`), nor of the subagent its `task` tool starts
    // (`general`), can ask: every permission kilo asks about is answered in the config.
    let agents = get_json(&kilo, &password, "/agent").await;
    for agent in ["code", "general"] {
        assert_eq!(
            surviving_asks(&agents, agent),
            Vec::<Value>::new(),
            "{agent}"
        );
    }

    let session = client.create_session("polecat-1").await.unwrap();
    let mut events = client.events().await.unwrap();
    models.push(Reply::bash(COMMAND));
    models.push(Reply::text(FINAL_TEXT));
    let started = Instant::now();
    client
        .prompt_async(
            &session.id,
            &ModelRef::parse(MODEL).unwrap(),
            "Add hello.txt and commit it.",
        )
        .await
        .unwrap();
    let turn = follow(&mut events, &session.id).await;
    eprintln!("the tool turn took {:?}", started.elapsed());

    // The turn ended on its own: no prompt, no error, idle.
    assert!(!turn.permission_asked, "a permission was asked: {turn:?}");
    assert!(turn.idle, "{turn:?}");
    assert!(turn.errors.is_empty(), "{turn:?}");
    assert!(turn.tool_parts > 0, "no tool part was streamed: {turn:?}");
    assert_eq!(
        get_json(&kilo, &password, "/permission").await,
        Value::Array(vec![]),
        "nothing waits for approval"
    );
    assert!(!client
        .session_status()
        .await
        .unwrap()
        .contains_key(&session.id));
    let messages = client.messages(&session.id).await.unwrap();
    assert_eq!(last_assistant_text(&messages), Some(FINAL_TEXT));

    // The scripted model saw two requests: the prompt (with kilo's bash tool offered and
    // none that waits for a person), then the bash result.
    let requests = models.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let offered = &requests[0].tool_names;
    assert!(offered.iter().any(|t| t == BASH_TOOL), "{offered:?}");
    for (name, action) in UNATTENDED_PERMISSIONS {
        if action == "deny" {
            assert!(!offered.iter().any(|t| t == name), "{name}: {offered:?}");
        }
    }
    assert!(requests[0].tool_results().is_empty());
    let results = requests[1].tool_results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].call_id, TOOL_CALL_ID);

    // The bead's branch has exactly one new commit, holding hello.txt, and nothing is left
    // uncommitted.
    assert_eq!(
        git(&repo, h, &["rev-parse", "--abbrev-ref", "HEAD"]),
        BRANCH
    );
    assert_eq!(
        git(
            &repo,
            h,
            &["rev-list", "--count", &format!("{base}..{BRANCH}")]
        ),
        "1"
    );
    assert_eq!(git(&repo, h, &["rev-parse", &format!("{BRANCH}~1")]), base);
    assert_eq!(
        git(&repo, h, &["show", "--name-only", "--format=", BRANCH]),
        "hello.txt"
    );
    assert_eq!(
        git(&repo, h, &["show", &format!("{BRANCH}:hello.txt")]),
        "hello"
    );
    assert_eq!(
        git(&repo, h, &["log", "-1", "--format=%s %an", BRANCH]),
        "add hello polecat"
    );
    assert_eq!(git(&repo, h, &["status", "--porcelain"]), "");
    assert_eq!(
        git(&repo, h, &["rev-parse", "main"]),
        base,
        "main is untouched"
    );

    drop(events);
    kilo.stop().await;
    models.shutdown().await;
}
