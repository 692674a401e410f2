"""What a default ``shipcaptain demo`` run prints, checked alike by every test that runs one."""

from __future__ import annotations

from shipcaptain.sandbox.doubles.kubernetes import digest_of


def assert_rolled_out_on_the_sandbox_cluster(out: str) -> None:
    """What every default demo prints of its rollout (test_cli and test_k8s_demo)."""
    assert "[apply_manifests] applied 11 objects" in out
    for name in ("api", "web", "worker"):
        assert f"[rollout_{name}] rollout of {name} done" in out
    # the digests the Deploy workflow reported (its release-outputs artifact)
    built = digest_of("ghcr.io/valuecanvas/api:1.4.0")[: len("sha256:") + 12]
    assert f"[image_digest_confirmed] 5 pods run the build's digest: api {built}" in out
    assert "SUPABASE_SERVICE_KEY" not in out
    assert "sandbox-service-key" not in out
