#!/usr/bin/env bash
# The whole fan-out benchmark, one command: builds Alongside in release, installs the
# Node `ws` peer from its lockfile, and runs every scenario of benches/fanout.rs.
# Results and method: docs/performance.md. Takes about 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

# Many sockets need many file descriptors, in the server and in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
echo "open-file limit per process: $limit"

(cd benches/peer && npm ci --no-fund --no-audit --loglevel=error)

fanout() { echo; echo "### fanout $*"; cargo bench --quiet --bench fanout -- "$@"; }

# One room of 1,000, then of 10,000, side by side with the peer: the rate ladder.
fanout --scenario room --sockets 1000 --senders 10 --peer \
  --ladder 100,150,200,300,400,500,600,700,800,900,1000,1200
fanout --scenario room --sockets 10000 --senders 10 --peer --ladder 10,20,30,40,50,60,70,80,100
# 100 rooms of 100 (Alongside only: the peer has no rooms).
fanout --scenario rooms --sockets 10000 --rooms 100 --accounts 200 --ladder 500,1000,1500,2000
# Send-ack latency at 1,000+ stored messages/s where fan-out is small.
fanout --scenario rooms --sockets 1000 --rooms 100 --accounts 200 --ladder 1000,2000,3000
# Memory per idle authenticated socket.
fanout --scenario idle --sockets 10000
if [ "$limit" -ge 52000 ]; then
  fanout --scenario idle --sockets 50000 --addresses 16
else
  echo; echo "### 50,000 idle sockets skipped: the open-file limit ($limit) is below what they need"
  fanout --scenario idle --sockets $((limit - 2000)) --addresses 16
fi
# Abuse: 2,000 slow-header connections (closed by the deadline?), and 100 sockets that ask
# for 1 GB of replies and read none (memory held for them).
fanout --scenario slowloris --sockets 2000 --addresses 16
fanout --scenario stall --sockets 100 --addresses 8 --accounts 10
# Chat latency during a storm of 50 logins/s.
fanout --scenario storm --sockets 1000 --senders 10 --ladder 100 --logins 50
# Several nodes: the 1,000-socket room on one SQLite node, then split over two nodes on
# PostgreSQL + Redis (the machine's own, or ALONGSIDE_TEST_POSTGRES / ALONGSIDE_TEST_REDIS),
# and durable send throughput on SQLite and on PostgreSQL.
fanout --scenario cluster --nodes 2 --sockets 1000 --senders 10 --ladder 200,400,600,800,1000,1200,1600
fanout --scenario durable --senders 10 --window 8 --seconds 5
