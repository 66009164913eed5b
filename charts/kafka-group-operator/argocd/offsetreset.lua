-- Argo CD health of a kafkagroups.dev OffsetReset (argocd-cm key resource.customizations.health.kafkagroups.dev_OffsetReset).
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
  local blocked = cond("DeletionBlocked")
  if is(blocked, "True") then return {status = "Degraded", message = says(blocked, "deletion blocked")} end
  return {status = "Progressing", message = "deleting"}
end
if obj.status == nil or (obj.status.observedGeneration or 0) < (meta.generation or 0) then
  return {status = "Progressing", message = "waiting for the operator"}
end

local phase = obj.status.phase
if phase == nil or phase == "" then return {status = "Progressing", message = "pending"} end
if phase == "Succeeded" then
  -- A re-created reset that the ledger knows says "AlreadyApplied: applied at …" here.
  return {status = "Healthy", message = says(cond("Complete"), "Succeeded")}
end
-- A dry run ends at Planned; any other reset passes through it on its way to Applying.
if phase == "Planned" and obj.spec ~= nil and obj.spec.dryRun == true then
  return {status = "Healthy", message = "planned (dry run)"}
end
if phase == "Failed" then
  -- Whichever condition carries the failure: Failed, Stalled, else Complete=False.
  local why = cond("Failed")
  if not is(why, "True") then why = cond("Stalled") end
  if not is(why, "True") then why = cond("Complete") end
  return {status = "Degraded", message = "Failed: " .. says(why, "no reason given")}
end
-- Pending, ScalingDown, WaitingForInactive, Applying, Restoring (or a phase newer than this script).
local msg = str(phase)
local waiting = cond("Waiting")
if not is(waiting, "True") then waiting = cond("Retrying") end
if is(waiting, "True") and says(waiting, "") ~= "" then msg = msg .. ": " .. says(waiting, "") end
return {status = "Progressing", message = msg}
