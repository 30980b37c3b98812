"""Every ESIMOTA_* variable the code reads is in README's configuration table (issue 17)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_variable_the_code_reads_is_documented():
    read: set[str] = set()
    for path in list((ROOT / "src").rglob("*.py")) + [ROOT / "setup.py"]:
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r"\bESIMOTA_[A-Z0-9_]+[A-Z0-9]\b", text))
        for name in re.findall(r'interval\("([A-Z_]+)"', text):  # jobs.ops.interval(NAME): ESIMOTA_NAME_INTERVAL
            read.add(f"ESIMOTA_{name}_INTERVAL")
    table = [ln for ln in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if ln.startswith("| `")]
    documented = set(re.findall(r"`(ESIMOTA_[A-Z0-9_]+)`", "\n".join(table)))
    assert sorted(read - documented) == []
