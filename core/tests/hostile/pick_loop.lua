-- Hostile: a host scan called forever
return { route = function(conversation, candidates, ctx)
  while true do sb.pick.longest_idle(candidates, { "x" }) end
end }
