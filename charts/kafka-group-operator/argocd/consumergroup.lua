-- Argo CD health of a kafkagroups.dev ConsumerGroup (argocd-cm key resource.customizations.health.kafkagroups.dev_ConsumerGroup).
-- Argo CD runs it with the base and table libraries only (no string.*, no math.*): text is joined with `..`
-- through str(), which turns a missing field into "" instead of failing.
local function str(v) if v == nil then return "" end return tostring(v) end
local function cond(t)
  if obj.status == nil or type(obj.status.conditions) ~= "table" then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if type(c) == "table" and c.type == t then return c end
  end
  return nil
end
local function is(c, s) return c ~= nil and c.status == s end
-- "Reason: message" (either may be missing), or the fallback when both are.
local function says(c, fallback)
  if c == nil then return fallback end
  local r, m = str(c.reason), str(c.message)
  if r ~= "" and m ~= "" then return r .. ": " .. m end
  if r .. m == "" then return fallback end
  return r .. m
end

local meta = obj.metadata or {}
if meta.deletionTimestamp ~= nil then
  -- The finalizer refuses to delete the Kafka group (e.g. it still has members): the user must act.
  local blocked = cond("DeletionBlocked")
  if is(blocked, "True") then return {status = "Degraded", message = says(blocked, "deletion blocked")} end
  return {status = "Progressing", message = "deleting"}
end
-- Nothing the status says is about the current spec until the operator has observed this generation.
if obj.status == nil or (obj.status.observedGeneration or 0) < (meta.generation or 0) then
  return {status = "Progressing", message = "waiting for the operator"}
end

local st = obj.status
local stalled, ready, blocked = cond("Stalled"), cond("Ready"), cond("DeletionBlocked")
local lag, reconciling = cond("LagWithinBudget"), cond("Reconciling")
if is(stalled, "True") then return {status = "Degraded", message = says(stalled, "stalled")} end
if is(ready, "False") then return {status = "Degraded", message = says(ready, "the group cannot be observed")} end
if is(blocked, "True") then return {status = "Degraded", message = says(blocked, "deletion blocked")} end
if is(lag, "False") then
  return {status = "Degraded", message = "LagWithinBudget: " .. says(lag, "lag over budget")}
end
if is(ready, "True") then
  -- e.g. "Stable, 2 members, lag 432 (OK)"
  local msg = str(st.state)
  if msg == "" then msg = "observed" end
  msg = msg .. ", " .. str(st.members or 0) .. ((st.members == 1) and " member" or " members")
  if st.totalLag ~= nil then msg = msg .. ", lag " .. str(st.totalLag) end
  if st.lagStatus ~= nil then msg = msg .. " (" .. str(st.lagStatus) .. ")" end
  return {status = "Healthy", message = msg}
end
if is(reconciling, "True") then return {status = "Progressing", message = says(reconciling, "reconciling")} end
return {status = "Progressing", message = says(ready, "waiting for the operator")}
