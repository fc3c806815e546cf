//! Handing a running local container to another town (`rename_container`, how a brand-new
//! town claims a warm pool's server): the town's directory becomes a link to the pool's,
//! its start adopts the container, its `adopt` finds the labelled server exactly once, a
//! refused hand-over changes nothing, and `remove` deletes the link and the directory.

use std::time::Duration;

use gastown_core::{
    CommandSpec, ContainerOptions, ContainerPath, ContainerRuntime, Error, ProcessLabel, TownId,
};
use gastown_runtime_local::LocalRuntime;

const GRACE: Duration = Duration::from_secs(2);

fn town(name: &str) -> TownId {
    TownId::new(name).unwrap()
}

#[tokio::test]
async fn a_handed_over_container_is_the_towns_with_its_server_adopted_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = LocalRuntime::new(dir.path().to_path_buf());
    let (pool, alpha) = (town("pool-1"), town("alpha"));
    let opts = ContainerOptions::default();
    rt.start(&pool, &opts).await.unwrap();
    let file = ContainerPath::new("/agents/mayor/home/note").unwrap();
    rt.put_file(&pool, &file, b"from the pool").await.unwrap();
    let label = ProcessLabel {
        agent: "mayor".to_owned(),
        config_hash: "hash".to_owned(),
        port: 4321,
        lock: Some(ContainerPath::new("/agents/mayor/server.lock").unwrap()),
    };
    let server = CommandSpec::new("sleep")
        .arg("300")
        .env("PATH", "/usr/bin:/bin");
    let spawned = rt
        .spawn_labelled(&pool, &server, &label, GRACE)
        .await
        .unwrap();
    let pid = spawned.handle.pid().unwrap();

    // Refusals change nothing.
    let taken = town("taken");
    rt.start(&taken, &opts).await.unwrap();
    assert!(matches!(
        rt.rename_container(&pool, &taken, &opts).await,
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        rt.rename_container(&town("nobody"), &town("beta"), &opts)
            .await,
        Err(Error::ContainerNotRunning { .. })
    ));
    assert_eq!(rt.get_file(&pool, &file).await.unwrap(), b"from the pool");

    rt.rename_container(&pool, &alpha, &opts).await.unwrap();
    assert!(rt.town_dir(&alpha).symlink_metadata().unwrap().is_symlink());
    assert_eq!(rt.get_file(&alpha, &file).await.unwrap(), b"from the pool");
    assert!(matches!(
        rt.put_file(&pool, &file, b"x").await,
        Err(Error::ContainerNotRunning { .. })
    ));
    let info = rt.start(&alpha, &opts).await.unwrap();
    assert!(!info.created, "the town adopts the handed-over container");
    let adopted = rt
        .adopt(&alpha, "mayor")
        .await
        .unwrap()
        .expect("the server");
    assert_eq!(adopted.handle.pid(), Some(pid));
    assert_eq!(adopted.label, label);
    assert!(rt.adopt(&alpha, "mayor").await.unwrap().is_none(), "once");

    let real = std::fs::canonicalize(rt.town_dir(&alpha)).unwrap();
    rt.remove(&alpha).await.unwrap();
    assert!(!adopted.handle.status().await.is_alive());
    assert!(rt.town_dir(&alpha).symlink_metadata().is_err());
    assert!(!real.exists(), "the pool's directory went with the town");
    rt.remove(&taken).await.unwrap();
}
