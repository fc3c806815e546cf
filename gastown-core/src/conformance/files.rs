//! File checks: byte-exact round trips, missing files, and paths that could escape.

use super::support::{finish, fresh, path, read, sh, skipped, start, SEARCH_PATH, SHELL};
use super::Capabilities;
use crate::command::CommandSpec;
use crate::error::Error;
use crate::ids::TownId;
use crate::path::ContainerPath;
use crate::runtime::{ContainerRuntime, ContainerRuntimeExt};

/// Files round-trip byte for byte (all 256 byte values, an empty file), parents are
/// created, and a second put replaces the whole file; with [`Capabilities::shell`],
/// processes read and write the same bytes.
pub async fn check_file_round_trip(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    fresh(rt, town).await;
    start(rt, town).await;
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(256 * 64).collect();
    let file = path("/files/a/b/c/all-bytes.bin");
    rt.put_file(town, &file, &all_bytes)
        .await
        .expect("files: put");
    assert_eq!(read(rt, town, &file).await, all_bytes, "files: round trip");

    // The process sees the same bytes.
    if caps.shell {
        let out = rt
            .exec_ok(
                town,
                &CommandSpec::new("cat").arg(&file).env("PATH", SEARCH_PATH),
            )
            .await
            .expect("files: cat");
        assert_eq!(out.stdout, all_bytes, "files: as the process reads them");
    }

    rt.put_file(town, &file, b"short")
        .await
        .expect("files: replace");
    assert_eq!(
        read(rt, town, &file).await,
        b"short",
        "files: replaced whole"
    );

    let empty = path("/files/empty");
    rt.put_file(town, &empty, b"")
        .await
        .expect("files: put empty");
    assert_eq!(read(rt, town, &empty).await, b"");

    if !caps.shell {
        skipped("files written and read by processes", SHELL);
        return finish(rt, town).await;
    }
    // A file a process wrote reads back through the API.
    let made = path("/files/made-by-sh.txt");
    rt.exec_ok(town, &sh("printf 'a\\nb' > \"$1\"").arg("sh").arg(&made))
        .await
        .expect("files: write by sh");
    assert_eq!(read(rt, town, &made).await, b"a\nb");
    finish(rt, town).await;
}

/// `get_file` of a missing file (or one in a missing directory) is
/// [`Error::FileNotFound`]; other files are unaffected.
pub async fn check_missing_file(rt: &dyn ContainerRuntime, town: &TownId, _caps: &Capabilities) {
    fresh(rt, town).await;
    start(rt, town).await;
    let present = path("/missing/present.txt");
    rt.put_file(town, &present, b"here")
        .await
        .expect("missing: put");
    for missing in ["/missing/absent.txt", "/no/such/dir/file"] {
        match rt.get_file(town, &path(missing)).await {
            Err(Error::FileNotFound { path }) => assert_eq!(path, missing),
            other => panic!("get_file {missing}: expected FileNotFound, got {other:?}"),
        }
    }
    assert!(!rt
        .file_exists(town, &path("/missing/absent.txt"))
        .await
        .unwrap());
    assert_eq!(read(rt, town, &present).await, b"here");
    finish(rt, town).await;
}

/// Paths that could escape the container are rejected before reaching the runtime:
/// relative, `..`, `.`, empty components, NUL bytes; the container's files are untouched.
pub async fn check_path_validation(rt: &dyn ContainerRuntime, town: &TownId, _caps: &Capabilities) {
    fresh(rt, town).await;
    start(rt, town).await;
    let file = path("/validation/keep.txt");
    rt.put_file(town, &file, b"intact")
        .await
        .expect("validation: put");
    for bad in [
        "../x", "x", "", "/a/../b", "/..", "/a/./b", "/a//b", "/a\0b",
    ] {
        assert!(
            matches!(ContainerPath::new(bad), Err(Error::InvalidPath { .. })),
            "path validation: {bad:?} must be rejected"
        );
    }
    for bad in ["../x", "/etc", "a/../../x"] {
        assert!(
            matches!(
                file.parent().unwrap().join(bad),
                Err(Error::InvalidPath { .. })
            ),
            "path validation: join({bad:?}) must be rejected"
        );
    }
    assert_eq!(read(rt, town, &file).await, b"intact");
    finish(rt, town).await;
}
