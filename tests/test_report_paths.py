from georef.report import report_paths


def test_companions_keep_every_dot_of_the_report_name():
    # Two reports "a.2024.json" and "a.2025.json" once shared "a.md" and "a.html".
    names = [p.name for p in report_paths("out/a.2024.json")]
    assert names == ["a.2024.json", "a.2024.md", "a.2024.html", "a.2024_residuals.png", "a.2024_histogram.png"]
    assert [p.name for p in report_paths("out/r")] == ["r", "r.md", "r.html", "r_residuals.png", "r_histogram.png"]
