"""Export files are temporary and bounded (serve/downloads.py): each Export used to leave a new folder in
/tmp that nothing deleted (issue 14, point 7)."""
from serve import downloads


def test_only_the_newest_download_folders_stay(monkeypatch):
    monkeypatch.setattr(downloads, "KEEP", 3)
    made = []
    for i in range(5):
        folder = downloads.fresh_folder(f"export-{i}")
        (folder / "metrics.csv").write_text("x")
        made.append(folder)
    assert [f.exists() for f in made] == [False, False, True, True, True]
    assert all(f.parent == downloads.root() for f in made)


def test_the_app_has_gradio_clean_its_file_cache():
    """Gradio copies every returned file into its own cache; the app asks it to delete old ones."""
    import app
    demo = app.build_app()
    assert demo.delete_cache is not None and demo.delete_cache[1] <= 24 * 3600
