"""Tools shared by the tests, the benchmarks and the scripts: the headless-Chromium driver
(`browser`), a whole running stack of real processes (`stack`) and small statistics
(`stats`).

Installed with the project so `bench/*.py` and `scripts/*.py` import it as they are run
(`.venv/bin/python bench/x.py`); the app itself never imports it. `browser` needs the `dev`
extra (selenium) and Debian's chromium + chromium-driver.
"""
