"""The `file` input: log files followed like `tail -F`, lines that match a pattern become events.

discovery.py   which files the globs name now (and the directories to watch for wake-ups)
reader.py      one file followed by identity: reading, partial lines, truncation, rotation
scan.py        finding the lines a block of text has that some pattern matches (pure)
multiline.py   joining continuation lines into records (pure, clock passed in)
records.py     a matched record -> an Event: labels, annotations, threshold (pure)
tailer.py      the loop of one input: discover, read, commit events and offsets together
"""
