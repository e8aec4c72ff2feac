#!/bin/bash
# usage: queue.sh FILE  (each line: name|args) ; runs 2 at a time
export BERT4REC_DATA_DIR=/work/shared/data PYTHONPATH=/work/exp/src OMP_NUM_THREADS=1
cd /work/exp
grep -v '^#' "$1" | while IFS='|' read -r name args; do
  [ -z "$name" ] && continue
  while [ "$(pgrep -fc 'python exp.py')" -ge 2 ]; do sleep 5; done
  nohup python exp.py $name $args > log_$name.txt 2>&1 &
  sleep 2
done
wait
