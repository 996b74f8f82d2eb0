"""Jobs: thin entry points picked by `config.job` (plm/main.py). Each builds what it
needs from the layers below and runs the one loop (plm/train.py) or one
evaluation; jobs never import each other."""
