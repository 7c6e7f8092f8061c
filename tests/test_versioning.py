"""The DVC metadata repository: track, push to the local remote, reopen."""

import hashlib
import json
from pathlib import Path

import pytest

from components.adapters.versioning import MetadataRepo


def write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def remote_object(remote: Path, md5: str) -> Path:
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def test_track_and_push_two_files(tmp_path: Path):
    root, remote = tmp_path / "metadata", tmp_path / "metadata-remote"
    repo = MetadataRepo(root, remote)
    manifest = write_json(root / "manifests" / "party-a.json", {"rows": 12, "contract": "breast_cancer@v1"})
    contract = write_json(root / "contracts" / "breast_cancer_v1.json", {"name": "breast_cancer", "version": 1})

    hashes = [repo.track(manifest), repo.track(contract)]
    pushed = repo.push()

    assert hashes == [md5_of(manifest), md5_of(contract)]
    assert pushed == 2
    assert remote_object(remote, hashes[0]).read_bytes() == manifest.read_bytes()
    assert remote_object(remote, hashes[1]).read_bytes() == contract.read_bytes()
    assert repo.tracked() == {
        "contracts/breast_cancer_v1.json": md5_of(contract),
        "manifests/party-a.json": md5_of(manifest),
    }
    assert not (root / ".git").exists()


def test_opening_twice_keeps_state_and_pushes_only_changes(tmp_path: Path):
    root, remote = tmp_path / "metadata", tmp_path / "metadata-remote"
    first = MetadataRepo(root, remote)
    manifest = write_json(root / "manifest.json", {"rows": 12})
    first.track(manifest)
    first.push()
    config_before = (root / ".dvc" / "config").read_text()

    again = MetadataRepo(root, remote)
    nothing_new = again.push()
    write_json(manifest, {"rows": 13})
    changed = again.track(manifest)

    assert (root / ".dvc" / "config").read_text() == config_before
    assert "analytics = False" in config_before
    assert nothing_new == 0
    assert changed == md5_of(manifest)
    assert again.push() == 1
    assert again.tracked() == {"manifest.json": changed}


def test_files_outside_the_repository_are_refused(tmp_path: Path):
    repo = MetadataRepo(tmp_path / "metadata", tmp_path / "metadata-remote")
    outside = write_json(tmp_path / "elsewhere.json", {})

    with pytest.raises(ValueError, match="outside the metadata repository"):
        repo.track(outside)


def test_untrack_drops_the_record_and_keeps_the_file(tmp_path: Path):
    root = tmp_path / "metadata"
    repo = MetadataRepo(root, tmp_path / "metadata-remote")
    kept = write_json(root / "champions" / "kept.json", {"version": 1})
    dropped = write_json(root / "champions" / "dropped.json", {"version": 2})
    repo.track(kept)
    repo.track(dropped)

    repo.untrack(dropped)
    repo.untrack(dropped)  # again: nothing to do
    repo.untrack(root / "champions" / "never-tracked.json")

    assert repo.tracked() == {"champions/kept.json": md5_of(kept)}
    assert dropped.exists() and not dropped.with_name("dropped.json.dvc").exists()


def test_many_files_are_tracked_in_one_go_each_with_its_own_hash(tmp_path: Path):
    root, remote = tmp_path / "metadata", tmp_path / "metadata-remote"
    repo = MetadataRepo(root, remote)
    paths = [write_json(root / "manifests" / f"party-{i}.json", {"rows": 10 + i}) for i in range(5)]

    hashes = repo.track_all(paths)

    assert hashes == {path: md5_of(path) for path in paths}
    assert len(set(hashes.values())) == 5
    assert repo.push() == 5
    assert repo.tracked() == {f"manifests/party-{i}.json": md5_of(paths[i]) for i in range(5)}
    assert repo.track_all([]) == {}
    with pytest.raises(ValueError, match="outside"):
        repo.track_all([write_json(tmp_path / "elsewhere.json", {})])
