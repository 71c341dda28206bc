#!/bin/sh
# A stand-in coding agent for the demo: it does something visible in its
# tmux window and reports progress and completion over MQTT, the way a real
# agent (or a wrapper around one) would. The prompt arrives as "$1".
set -e
printf '\n  demo agent, job %s (attempt %s)\n  task: %s\n\n' "$DELEGATE_JOB_ID" "$DELEGATE_ATTEMPT" "$1"
for step in 1 2 3; do
  printf '  step %s of 3 ...\n' "$step"
  sleep 1
  tmux-delegate publish --event progress --message "step $step of 3 done" --data "{\"step\": $step}"
done
printf '\n  all done\n'
tmux-delegate publish --event completed --message "the demo task is done"
