const waiting: Array<() => void> = [];
let granting = false;

function grantNextTurn(): void {
  const resume = waiting.shift();
  if (resume === undefined) {
    granting = false;
    return;
  }
  resume();
  // Queued from inside the check phase, so it runs in the loop's next turn, after timers and I/O.
  setImmediate(grantNextTurn);
}

/**
 * Resolves in a later turn of the event loop, one caller a turn across the whole process. A bare
 * `setImmediate` would let every caller waiting on it run in the same turn: four shards rebuilding
 * side by side then held the loop for their four batches at once.
 */
export function takeEventLoopTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    if (!granting) {
      granting = true;
      setImmediate(grantNextTurn);
    }
  });
}
