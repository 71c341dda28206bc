#!/bin/sh
# A stand-in coding agent for the demo: it does something visible in its
# tmux window for about 15 seconds (time enough to follow it from another
# terminal) and reports progress and completion over MQTT, the way a real
# agent (or a wrapper around one) would. The prompt arrives as "$1".
set -e
printf '\n  demo agent, job %s (attempt %s)\n  task: %s\n\n' "$DELEGATE_JOB_ID" "$DELEGATE_ATTEMPT" "$1"
for step in 1 2 3 4 5; do
  printf '  step %s of 5 ...\n' "$step"
  sleep 3
  tmux-delegate publish --event progress --message "step $step of 5 done" --data "{\"step\": $step}"
done
printf '\n  all done\n'
tmux-delegate publish --event completed --message "the demo task is done"
