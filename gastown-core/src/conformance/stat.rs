//! The `stat` check: kinds and sizes without reading contents.

use super::support::{fresh, path, sh, skipped, start, SHELL};
use super::Capabilities;
use crate::error::Error;
use crate::ids::TownId;
use crate::runtime::{ContainerRuntime, ContainerRuntimeExt, PathKind, PathStat};

async fn stat(rt: &dyn ContainerRuntime, town: &TownId, p: &str) -> Option<PathStat> {
    rt.stat(town, &path(p))
        .await
        .unwrap_or_else(|e| panic!("stat {p}: {e}"))
}

/// `stat` of a file gives [`PathKind::File`] and its exact size (an empty file too), of a
/// directory (one made by `put_file`'s parents) [`PathKind::Dir`], of a missing path or
/// one under a missing directory `None`, and `file_exists` agrees; with
/// [`Capabilities::shell`], a symlink is followed (a dangling one is `None`); with
/// [`Capabilities::pause`], a paused container's `stat` is [`Error::ContainerPaused`];
/// a stopped container's is [`Error::ContainerNotRunning`].
pub async fn check_stat(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    fresh(rt, town).await;
    match rt.stat(town, &path("/stat/x")).await {
        Err(Error::ContainerNotRunning { .. }) => {}
        other => panic!("stat of an absent container: expected ContainerNotRunning, got {other:?}"),
    }
    start(rt, town).await;
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    rt.put_file(town, &path("/stat/dir/data.bin"), &data)
        .await
        .expect("stat: put");
    rt.put_file(town, &path("/stat/dir/empty"), b"")
        .await
        .expect("stat: put empty");
    assert_eq!(
        stat(rt, town, "/stat/dir/data.bin").await,
        Some(PathStat::new(PathKind::File, 70_000)),
        "stat: a file's kind and size"
    );
    assert_eq!(
        stat(rt, town, "/stat/dir/empty").await,
        Some(PathStat::new(PathKind::File, 0)),
        "stat: an empty file"
    );
    let dir = stat(rt, town, "/stat/dir").await.map(|s| s.kind);
    assert_eq!(dir, Some(PathKind::Dir), "stat: a directory");
    for missing in ["/stat/dir/absent", "/stat/no/such/dir/file"] {
        assert_eq!(stat(rt, town, missing).await, None, "stat: {missing}");
        assert!(!rt.file_exists(town, &path(missing)).await.unwrap());
    }
    assert!(rt
        .file_exists(town, &path("/stat/dir/data.bin"))
        .await
        .unwrap());

    if caps.shell {
        rt.exec_ok(
            town,
            &sh("ln -s data.bin \"$1\" && ln -s gone \"$2\"")
                .arg("sh")
                .arg(path("/stat/dir/link"))
                .arg(path("/stat/dir/dangling")),
        )
        .await
        .expect("stat: ln -s");
        assert_eq!(
            stat(rt, town, "/stat/dir/link").await,
            Some(PathStat::new(PathKind::File, 70_000)),
            "stat: a symlink is followed"
        );
        assert_eq!(
            stat(rt, town, "/stat/dir/dangling").await,
            None,
            "stat: a dangling symlink"
        );
    } else {
        skipped("stat of symlinks", SHELL);
    }

    if caps.pause && rt.can_pause() {
        rt.pause(town).await.expect("stat: pause");
        let r = rt.stat(town, &path("/stat/dir/data.bin")).await;
        assert!(
            matches!(r, Err(Error::ContainerPaused { .. })),
            "stat while paused must be ContainerPaused, got {r:?}"
        );
        rt.resume(town).await.expect("stat: resume");
    }

    rt.stop(town, std::time::Duration::from_secs(5))
        .await
        .expect("stat: stop");
    match rt.stat(town, &path("/stat/dir/data.bin")).await {
        Err(Error::ContainerNotRunning { .. }) => {}
        other => panic!("stat of a stopped container: expected ContainerNotRunning, got {other:?}"),
    }
    rt.remove(town).await.expect("stat: remove");
}
