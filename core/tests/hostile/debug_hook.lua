-- Hostile: reaching debug.sethook to remove the budget
return { route = function(conversation, candidates, ctx)
  debug.sethook()
  while true do end
end }
