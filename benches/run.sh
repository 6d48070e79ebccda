#!/usr/bin/env bash
# The whole fan-out benchmark, one command: builds Alongside in release, installs the
# peers (InspIRCd and NATS from the system's packages when missing, the Node `ws` peer
# from its lockfile), and runs every scenario of benches/fanout.rs, each system side by
# side in the same run. Results and method: docs/performance.md. Takes about 40 minutes
# on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

# Many sockets need many file descriptors, in the server and in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
echo "open-file limit per process: $limit"

# The peers. InspIRCd and NATS come from the distribution (Debian: inspircd,
# nats-server); configs in benches/peer/. A peer that cannot be installed is skipped
# by the generator, which says so.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! have inspircd || ! have nats-server; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq inspircd nats-server >/dev/null
  else
    echo "inspircd or nats-server is missing and cannot be installed here: those peers will be skipped"
  fi
fi
(cd benches/peer && npm ci --no-fund --no-audit --loglevel=error)

fanout() { echo; echo "### fanout $*"; cargo bench --quiet --bench fanout -- "$@"; }

# One room of 1,000: three runs, every system in each, then the medians and spreads;
# server CPU per delivery at 150 msg/s (150,000 deliveries/s), which the servers sustain.
fanout --scenario room --sockets 1000 --senders 10 --peer --runs 3 --start 100 --cpu-rate 150
# One room of 10,000: one message is 10,000 writes, which alone take 100-250 ms on this
# machine whatever the server, so its rungs hold below a p99 of 1 s instead of 200 ms.
fanout --scenario room --sockets 10000 --senders 10 --peer --start 10 --cpu-rate 10 --p99-limit-ms 1000
# 100 rooms of 100 (channels for InspIRCd, subjects for NATS; the Node peer has no rooms).
fanout --scenario rooms --sockets 10000 --rooms 100 --accounts 200 --peer --start 500 --cpu-rate 300
# Memory per idle socket, every system.
fanout --scenario idle --sockets 10000 --peer
if [ "$limit" -ge 52000 ]; then
  fanout --scenario idle --sockets 50000 --addresses 16
else
  echo; echo "### 50,000 idle sockets skipped: the open-file limit ($limit) is below what they need"
fi
# Send-ack latency at 1,000+ stored messages/s where fan-out is small (Alongside).
fanout --scenario rooms --sockets 1000 --rooms 100 --accounts 200 --ladder 1000,2000,3000
# Abuse: 2,000 slow-header connections (closed by the deadline?), and 100 sockets that ask
# for 1 GB of replies and read none (memory held for them).
fanout --scenario slowloris --sockets 2000 --addresses 16
fanout --scenario stall --sockets 100 --addresses 8 --accounts 10
# A 10,000-socket summit in Q&A: chat alone, then with 100 votes/s on one question
# (delivery p99, and the question_votes events per vote that reach each member).
fanout --scenario summit --sockets 10000 --senders 10 --votes 100 --seconds 5 --start 10
# Chat latency during a storm of 50 logins/s.
fanout --scenario storm --sockets 1000 --senders 10 --ladder 100 --logins 50
# Several nodes: the 1,000-socket room on one SQLite node, then split over two nodes on
# PostgreSQL + Redis (the machine's own, or ALONGSIDE_TEST_POSTGRES / ALONGSIDE_TEST_REDIS),
# and durable send throughput on SQLite and on PostgreSQL.
fanout --scenario cluster --nodes 2 --sockets 1000 --senders 10 --ladder 200,400,600,800,1000,1200,1600
fanout --scenario durable --senders 10 --window 8 --seconds 5
