import json
import shutil

import pytest

from fusion.cli import main
from fusion.config import ConfigError, load_site
from sensors.specs import DroneSpec, GroundSpec, RadarSpec
from tests.conftest import DEMO_SITE


@pytest.fixture
def site_dir(tmp_path):
    shutil.copy(DEMO_SITE, tmp_path / "site.toml")
    shutil.copy(DEMO_SITE.parent / "jurisdictions.geojson", tmp_path / "jurisdictions.geojson")
    return tmp_path


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_demo_site_loads_into_typed_frozen_objects(demo_site):
    assert demo_site.name == "demo-valley"
    kinds = [type(s.spec) for s in demo_site.sensors]
    assert RadarSpec in kinds and GroundSpec in kinds and DroneSpec in kinds
    assert {j.kind for j in demo_site.jurisdictions} == {"country", "sector", "zone"}
    with pytest.raises(AttributeError):
        demo_site.config.site.name = "x"
    assert demo_site.config.tracker.existence.confirm == 0.95  # defaults serve
    assert demo_site.config.tracker.imm.enabled


def test_imm_option_from_the_site_file(site_dir):
    edit(site_dir / "site.toml", "[tracker]", "[tracker]\n[tracker.imm]\nenabled = false\nquiet_sojourn_s = 30.0")
    imm = load_site(site_dir / "site.toml").config.tracker.imm
    assert not imm.enabled and imm.quiet_sojourn_s == 30.0 and imm.manoeuvre_sojourn_s == 10.0  # others default


@pytest.mark.parametrize("old,new,expected", [
    ('tracks_rate_hz = 1.0', 'tracks_rate_hz = 1.0\nspeed = 3', "outputs: object contains unknown field `speed`"),
    ('range_sigma_m = 15.0', 'range_sigma_m = -15.0', "sensors[0].range_sigma_m: expected `float` > 0.0, got -15.0"),
    ('range_sigma_m = 15.0', 'range_sigma_m = "big"', "sensors[0].range_sigma_m: expected `float`, got `str`"),
    ('kind = "radar"', 'kind = "lidar"', "sensors[0].kind: invalid value 'lidar'"),
    ('id = "ugs-012"', 'id = "ugs-011"', "sensors[3].id: duplicate sensor id 'ugs-011'"),
    ('node_id = "edge-1"\n', '', "site: object missing required field `node_id`"),
    ('port = 1883', 'port = 99999', "mqtt.port: expected `int` <= 65535, got 99999"),
    ('port = 1883', 'port = 1883\npassword_file = "pw"', "mqtt.password_file: set mqtt.username too"),
    ('port = 1883', 'port = 1883\ntls_key = "client.key"', "mqtt.tls_key: set mqtt.tls_cert too"),
    ('port = 1883', 'port = 1883\ntls_cert = "client.crt"', "mqtt.tls_cert: set mqtt.tls_key too"),
    ('port = 1883', 'port = 1883\nqueue_bytes = 1000', "mqtt.queue_bytes: expected `int` >= 1048576, got 1000"),
    ('[tracker]', '[tracker]\nconfirm_hits = 9', "tracker: object contains unknown field `confirm_hits`"),
    ('[tracker]', '[tracker]\nexistence.delete = 0.6', "tracker.existence: needs delete < show <= release"),
    ('[tracker]', '[tracker]\nimm.enabled = "yes"', "tracker.imm.enabled: expected `bool`, got `str`"),
    ('[tracker]', '[tracker]\nimm.manoeuvre_scale = 0', "tracker.imm.manoeuvre_scale: expected `float` > 0.0"),
    ('[tracker]', '[tracker]\nimm.moderate_scale = 4.0', "tracker.imm.moderate_scale: must lie between quiet_scale and"),
    ('[tracker]', '[tracker]\nimm.moderate_scale = 0\nimm.quiet_scale = 3.0',
     "tracker.imm.manoeuvre_scale: must be above quiet_scale"),
    ('name = "demo-valley"', 'name = "demo-valley', "not valid TOML"),
])
def test_bad_site_names_file_and_field(site_dir, old, new, expected):
    edit(site_dir / "site.toml", old, new)
    with pytest.raises(ConfigError) as info:
        load_site(site_dir / "site.toml")
    message = str(info.value)
    assert str(site_dir / "site.toml") in message
    assert expected in message


def _features(site_dir):
    return json.loads((site_dir / "jurisdictions.geojson").read_text())


def _write(site_dir, doc):
    (site_dir / "jurisdictions.geojson").write_text(json.dumps(doc))


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d["features"][1]["properties"].update(id="country-a"), "features[1].properties.id: duplicate id 'country-a'"),
    (lambda d: d["features"][0]["properties"].update(kind="province"), "features[0].properties.kind"),
    (lambda d: d["features"][2]["properties"].pop("agency"), "missing required field `agency` - at `features[2].properties`"),
    (lambda d: d["features"][3]["geometry"].update(coordinates=[[[8.0, 47.0], [8.01, 47.01], [8.01, 47.0], [8.0, 47.01], [8.0, 47.0]]]),
     "features[3].geometry: invalid polygon: Self-intersection"),
    (lambda d: d["features"][3]["geometry"].update(type="Point"), "features[3].geometry.type"),
    (lambda d: d["features"][3]["geometry"].update(coordinates=[[[8.0, 47.0], [8.0, 147.0], [9.0, 47.0], [8.0, 47.0]]]),
     "longitude/latitude out of range"),
])
def test_bad_jurisdictions_name_file_and_field(site_dir, mutate, expected):
    doc = _features(site_dir)
    mutate(doc)
    _write(site_dir, doc)
    with pytest.raises(ConfigError) as info:
        load_site(site_dir / "site.toml")
    assert "jurisdictions.geojson" in str(info.value)
    assert expected in str(info.value)


def test_cli_exits_2_with_message_on_bad_config(site_dir, capsys):
    edit(site_dir / "site.toml", 'azimuth_sigma_deg = 0.3', 'azimuth_sigma_deg = 0.3\nbeam = 2')
    assert main(["validate-config", str(site_dir / "site.toml")]) == 2
    err = capsys.readouterr().err
    assert "site.toml" in err and "sensors[0]" in err and "unknown field `beam`" in err


def test_validate_config_ok(capsys):
    assert main(["validate-config", str(DEMO_SITE)]) == 0
    assert "OK" in capsys.readouterr().out


def test_missing_file_is_exit_2(tmp_path, capsys):
    assert main(["validate-config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: cannot read" in capsys.readouterr().err
