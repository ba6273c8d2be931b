"""The `file` input: log files followed like `tail -F`, lines that match a pattern become events.

discovery.py   which files the globs name now (and the directories to watch for wake-ups)
reader.py      one file followed by identity: reading, partial lines, truncation, rotation
scan.py        finding the lines a block of text has that some pattern matches (pure)
literals.py    the text a pattern's every match must contain (for scan.py; pure)
multiline.py   joining continuation lines into records (pure, clock passed in)
records.py     a matched record -> an Event: labels, annotations, threshold (pure)
start.py       where to start reading a file just found: resume, first run, copy (pure)
copies.py      copytruncate copies: which followed file they copy, when they have settled
followed.py    the files followed and their descriptors under max_open_files; their status
batch.py       events and offsets committed together, retried under back-pressure
status.py      the counters and the status an input reports
wakeups.py     file-system events that wake the loop early (inotify)
tailer.py      the loop of one input: discover, open, read, retire, commit
"""
