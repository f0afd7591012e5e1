-- Hostile: reaching os.exit
return { route = function(conversation, candidates, ctx)
  os.exit(1)
end }
