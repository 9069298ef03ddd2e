-- Argo CD health check for every apikeys.dev kind: ApiClient, ApiToken, ServiceAccountKey,
-- CredentialStore and ClusterCredentialStore. Written for Lua 5.1 (Argo CD's gopher-lua).
--
-- The rules are kstatus' (what Flux waits on): the Ready condition counts only once
-- status.observedGeneration has caught up with metadata.generation.
local hs = {}

local function progressing(message)
  hs.status = "Progressing"
  hs.message = message
  return hs
end

if obj.metadata.annotations ~= nil and obj.metadata.annotations["apikeys.dev/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Paused by the annotation apikeys.dev/paused: the operator is not reconciling it"
  return hs
end

if obj.status == nil then
  return progressing("Waiting for the operator to report status")
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if observed == nil or (generation ~= nil and observed < generation) then
  return progressing("Waiting for the operator to observe generation " .. tostring(generation))
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
if ready == nil then
  return progressing("Waiting for the Ready condition")
end

-- A credential being minted: recorded before the upstream call, cleared once delivered.
if obj.status.pending ~= nil then
  local trigger = obj.status.pending.trigger or "create"
  return progressing("Issuing a new credential (" .. trigger .. ")")
end

local summary = (ready.reason or "") .. ": " .. (ready.message or "")
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

-- Reasons that resolve without anyone acting on this resource: the operator is issuing a
-- credential, or waits for its store (whose own health shows the store's problem).
local waiting = { Creating = true, Rotating = true, StoreNotReady = true }
if ready.status == "False" and not waiting[ready.reason] then
  hs.status = "Degraded"
  hs.message = summary
  return hs
end
return progressing(summary)
