-- Argo CD health check for every apikeys.dev kind: ApiClient, ApiToken, ServiceAccountKey,
-- CredentialStore and ClusterCredentialStore. Written for Lua 5.1 (Argo CD's gopher-lua).
--
-- The rules are kstatus' (what Flux and `kubectl wait` judge by): the operator sets the
-- abnormal-true conditions Stalled (a person must act) and Reconciling (work in progress,
-- a retry) next to Ready, and they count only once status.observedGeneration has caught up
-- with metadata.generation.
local hs = {}

local function verdict(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function says(c)
  return (c.reason or "") .. ": " .. (c.message or "")
end

if obj.metadata.deletionTimestamp ~= nil then
  return verdict("Progressing", "Being deleted: the operator removes what it created upstream first")
end

if obj.metadata.annotations ~= nil and obj.metadata.annotations["apikeys.dev/paused"] == "true" then
  return verdict("Suspended", "Paused by the annotation apikeys.dev/paused: the operator is not reconciling it")
end

if obj.status == nil then
  return verdict("Progressing", "Waiting for the operator to report status")
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if observed == nil or (generation ~= nil and observed < generation) then
  return verdict("Progressing", "Waiting for the operator to observe generation " .. tostring(generation))
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  return verdict("Degraded", says(stalled))
end

local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  return verdict("Progressing", says(reconciling))
end

local ready = condition("Ready")
if ready == nil then
  return verdict("Progressing", "Waiting for the Ready condition")
end
if ready.status == "True" then
  return verdict("Healthy", ready.message)
end
-- Not Ready, and neither stalled nor reconciling: a status written by an operator older
-- than those conditions.
return verdict("Degraded", says(ready))
