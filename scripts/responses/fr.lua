-- Réponses types en français (docs/lua.md, « Role: canned responses »).
return {
  { code = "greeting", title = "Accueil", language = "fr",
    text = "Bonjour {customer_name}, ici {agent_name}, du service {queue}. Que puis-je faire pour vous ?" },
  { code = "one_moment", title = "Un instant", language = "fr",
    text = "Merci, {customer_name}. Je vérifie cela pour vous, un instant s'il vous plaît." },
  { code = "order_number", title = "Numéro de commande", language = "fr",
    text = "Pourriez-vous m'indiquer votre numéro de commande ? Il figure dans votre e-mail de confirmation." },
  { code = "refund_time", title = "Délai de remboursement", language = "fr", queues = { "billing" },
    text = "Le remboursement arrive sur votre compte sous 5 à 10 jours ouvrés après sa validation." },
  { code = "anything_else", title = "Autre chose ?", language = "fr",
    text = "Puis-je faire autre chose pour vous, {customer_name} ?" },
  { code = "goodbye", title = "Au revoir", language = "fr",
    text = "Merci de nous avoir contactés, {customer_name}. Bonne journée !" },
}
