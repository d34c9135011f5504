"""The applications on top of the library: the `fastbptt` command (cli.py), the
character-level demo (demo.py, charlm.py) and its embedded corpus (corpus.py, data/), and
the experiments that show BPTT's theory measured (experiments/)."""
