-- wrk script for bench/mutations.py: drives PENDING jobs through their lifecycle.
-- Jobs go in blocks of BLOCK (more than the connections, so a job's next step is sent only
-- after its previous one was answered): start every job of a block, then report metrics on
-- each, then complete each. env: MUT_PREFIX (job id prefix), MUT_OFFSET (first job number),
-- MUT_JOBS (how many jobs).
local prefix = os.getenv("MUT_PREFIX") or "bench-pending-"
local jobs = tonumber(os.getenv("MUT_JOBS") or "10000")
local offset = tonumber(os.getenv("MUT_OFFSET") or "0")
local BLOCK = 256
local ops = {
  'mutation($id: ID!) { startTrainingJob(jobId: $id) { __typename ... on TrainingJob { jobId status } } }',
  'mutation($id: ID!) { reportTrainingMetrics(jobId: $id, metrics: {loss: 0.5, epoch: 3}) { __typename ... on TrainingJob { jobId status } } }',
  'mutation($id: ID!) { completeTrainingJob(jobId: $id, metrics: {accuracy: 0.9}) { __typename ... on TrainingJob { jobId status } } }',
}
n, ok, bad, sample = -1, 0, 0, ""  -- globals: done() reads them with thread:get
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  -- The first request this function makes is never sent (seen: the first failure was always
  -- job 0's report, its start missing), so it is a no-op.
  if n < 0 then n = 0; return wrk.format(nil, nil, nil, '{"query": "{ __typename }"}') end
  local block, within = math.floor(n / (3 * BLOCK)), n % (3 * BLOCK)
  local step, i = math.floor(within / BLOCK) + 1, block * BLOCK + within % BLOCK
  n = n + 1
  if i >= jobs then return wrk.format(nil, nil, nil, '{"query": "{ __typename }"}') end
  local body = string.format('{"query": "%s", "variables": {"id": "%s%06d"}}', ops[step], prefix, offset + i)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"__typename":"TrainingJob"', 1, true) then
    ok = ok + 1
  else
    bad = bad + 1
    if sample == "" and not string.find(body, '"Query"', 1, true) then sample = body end
  end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local t = threads[1]
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"ok":%d,"bad":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, t:get("ok"), t:get("bad"),
    latency:percentile(50), latency:percentile(99)))
  io.write("SAMPLE " .. string.sub(t:get("sample"), 1, 300) .. "\n")
end
