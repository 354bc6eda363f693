"""Which Secrets and ConfigMaps must exist before a build Pod is created."""

from buildwright.core.pod import required_volume_objects


def test_lists_mandatory_secrets_and_configmaps_once_in_order() -> None:
    manifest = {
        "spec": {
            "volumes": [
                {"name": "a", "emptyDir": {}},
                {"name": "b", "secret": {"secretName": "clone"}},
                {"name": "c", "secret": {"secretName": "docker", "optional": True}},
                {"name": "d", "configMap": {"name": "settings"}},
                {"name": "e", "projected": {"sources": [
                    {"secret": {"name": "clone"}},
                    {"configMap": {"name": "extra"}},
                    {"configMap": {"name": "maybe", "optional": True}},
                ]}},
            ]
        }
    }  # fmt: skip
    assert required_volume_objects(manifest) == [
        ("secrets", "clone"),
        ("configmaps", "settings"),
        ("configmaps", "extra"),
    ]


def test_a_pod_without_volumes_needs_nothing() -> None:
    assert required_volume_objects({"spec": {}}) == []
