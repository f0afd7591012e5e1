-- Hostile: reaching os.execute
return { route = function(conversation, candidates, ctx)
  os.execute('true')
end }
