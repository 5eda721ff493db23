"""The committed distance table still describes the engine.

Encodes LFW View 1 with the engine as ``scripts/impostor_table.py`` does
(cached after the first run), derives the table again and compares it with
:mod:`facegate.core.impostor_table`: an engine change that moves the
thresholds must come with a regenerated table
(``.venv/bin/python scripts/impostor_table.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.lfw, pytest.mark.model, pytest.mark.slow]


def test_committed_table_matches_the_engine(lfw_dir: Path) -> None:
    from facegate.core.calibration import DistanceModel, default_model
    from facegate.core.calibration_table import build_table
    from facegate.engine.factory import build_face_encoder
    from facegate.engine.folder_cache import encode_folder

    engine = build_face_encoder(fallback=True)
    found = encode_folder(engine, lfw_dir / "images", batch_size=32)
    fresh = DistanceModel.from_table(
        build_table(found.encodings, found.labels, encoder=engine.model_id)
    )
    committed = default_model()
    assert committed.encoder == engine.model_id, "table of another engine configuration"
    for rate in (1e-3, 1e-4, 1e-5, 1e-6):
        assert abs(fresh.pair_threshold(rate) - committed.pair_threshold(rate)) < 0.01, rate
    for t in (0.4, 0.5, 0.6):
        assert abs(fresh.resident_rate(t, 1) - committed.resident_rate(t, 1)) < 0.03, t
