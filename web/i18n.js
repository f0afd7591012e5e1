// Translations of the agent desktop and the customer chat (English, French).
// The language is the one picked in the page (kept in localStorage), else
// the browser's (navigator.language), else English.
// Static text is marked in the HTML with data-i18n (textContent),
// data-i18n-placeholder, data-i18n-aria-label and data-i18n-title.
(function () {
  'use strict';

  var STRINGS = {
    en: {
      title: 'Switchboard — Agent desktop',
      titleWithOffers: '({n}) Switchboard — new request',
      skipToConversation: 'Skip to the conversation',
      stateLabel: 'State',
      language: 'Language',
      logout: 'Log out',
      available: 'Available',
      idle: 'Idle',
      rona: 'RONA (request not answered)',
      loggedOut: 'Logged out',
      ronaExplained: 'You did not answer a request in time (RONA). You get no new requests until you set yourself Available.',
      ronaToast: 'A request was not answered in time: you are now in RONA.',
      setAvailable: 'Set Available',
      requests: 'Requests',
      noRequests: 'No request waiting.',
      conversations: 'Conversations',
      noConversations: 'No conversation yet.',
      selectConversation: 'Accept a request or pick a conversation on the left.',
      actions: 'Actions',
      transfer: 'Transfer',
      conference: 'Conference',
      endConference: 'End conference',
      leaveConference: 'Leave conference',
      end: 'End',
      wrapUp: 'Wrap-up',
      yourMessage: 'Your message',
      composePlaceholder: 'Type your reply — Enter to send, Shift+Enter for a new line',
      send: 'Send',
      details: 'Details',
      cadVariables: 'CAD variables',
      loginTitle: 'Agent desktop',
      tenant: 'Tenant',
      agent: 'Agent',
      password: 'Password',
      login: 'Log in',
      loginMissing: 'Enter the tenant, your agent id and your password.',
      loginRefused: 'Tenant, agent or password is not right.',
      sessionExpired: 'Your session is no longer valid (the server may have restarted). Log in again: what is on screen stays until then.',
      loggedOutMessage: 'You are logged out.',
      transferRequest: 'Transfer request',
      transferTo: 'Transfer to',
      queue: 'Queue',
      search: 'Search',
      searchPlaceholder: 'Search…',
      refresh: 'Refresh the queues and agents',
      cancel: 'Cancel',
      conferenceRequest: 'Conference request',
      wrapupReasons: 'Wrap-up reasons',
      later: 'Later',
      submitWrapup: 'Submit wrap-up',
      connected: 'Connected',
      offline: 'Offline',
      reconnecting: 'Reconnecting…',
      networkError: 'The server cannot be reached. Try again in a moment.',
      httpError: 'The server answered with an error ({status}).',
      newRequest: 'New request',
      offerKind_queue: 'New request',
      offerKind_transfer: 'Transferred to you',
      offerKind_conference: 'Conference invitation',
      sinceReceived: 'Time since the conversation was received',
      customer: 'Customer',
      source: 'Source',
      accept: 'Accept',
      acceptFrom: 'Accept the request from {name}',
      offerWithdrawn: 'The request from {name} was withdrawn ({reason}).',
      rescind_timeout: 'not answered in time',
      rescind_agent_unavailable: 'you are not available',
      rescind_interrupted: 'interrupted by an administrator',
      rescind_ended: 'the conversation ended',
      rescind_cancelled: 'cancelled',
      'rescind_undefined': 'withdrawn',
      conferenceCancelled: '{name} did not join the conference.',
      youLeft: 'You left the conversation with {name}.',
      interruptedToast: 'Conversation with {name} interrupted: {reason}.',
      deliveryFailed: 'Your reply to {name} was not delivered.',
      notDelivered: 'Not delivered',
      attLocation: 'Location',
      attLink: 'Link',
      attFile: 'File',
      attVideo: 'Video',
      attAudio: 'Audio',
      attOpen: 'Open full size',
      attDownload: 'Download',
      attUnavailable: 'Attachment unavailable',
      interruptedGeneric: 'an administrator deleted a resource this conversation belongs to',
      interruptedAlert: 'This conversation was interrupted: {reason}. You cannot continue it; end it.',
      wrapupNeeded: 'Wrap-up needed for the conversation with {name}.',
      wrapupFor: 'Conversation with {name}',
      wrapupDone: 'Wrap-up submitted.',
      phase_offered: 'Offered',
      phase_queued: 'Queued',
      phase_active: 'Active',
      phase_conference_requested: 'Conference requested',
      phase_conference: 'Conference',
      phase_conference_guest: 'Conference (invited)',
      phase_interrupted: 'Interrupted',
      phase_ended: 'Ended',
      phase_transferred: 'Transferred',
      phase_wrapped_up: 'Wrapped up',
      phase_dropped: 'Closed',
      phase_wrapup: 'Wrap-up',
      unread: '{n} unread',
      you: 'You',
      noSelection: 'No conversation selected.',
      channel: 'Channel',
      webchat: 'Web chat',
      received: 'Received',
      elapsed: 'Time since received',
      participants: 'Agents',
      invited: 'invited',
      cad_contact_origin: 'Contact origin',
      cad_entry_point: 'Entry point',
      cad_customer_name: 'Customer name',
      counterLabel: '{n} of {max} characters',
      tooLong: 'Your message is longer than {max} characters.',
      nothingFound: 'Nothing matches.',
      waiting: '{n} waiting',
      notAvailable: 'cannot take it',
      pickTarget: 'Pick a queue or an agent.',
      pickAgent: 'Pick an agent.',
      pickReason: 'Pick a wrap-up reason.',
      dismiss: 'Dismiss',
      // customer chat
      chatTitle: 'Chat with us',
      chatIntro: 'Write your question: an agent will answer here.',
      yourName: 'Your name',
      namePlaceholder: 'Optional',
      chatPlaceholder: 'Type your message — Enter to send',
      chatMessages: 'Conversation',
      agentJoined: '{name} joined the chat.',
      agentLeft: '{name} left the chat.',
      chatEnded: 'The conversation has ended. Write again to start a new one.',
      chatConnected: 'Online',
      chatReady: 'Ready',
      chatSent: 'Sent',
      chatNewConversation: 'New conversation'
    },
    fr: {
      title: 'Switchboard — Poste agent',
      titleWithOffers: '({n}) Switchboard — nouvelle demande',
      skipToConversation: 'Aller à la conversation',
      stateLabel: 'État',
      language: 'Langue',
      logout: 'Se déconnecter',
      available: 'Disponible',
      idle: 'Inactif',
      rona: 'RONA (demande sans réponse)',
      loggedOut: 'Déconnecté',
      ronaExplained: 'Vous n’avez pas répondu à temps à une demande (RONA). Vous ne recevez plus de demandes tant que vous ne repassez pas à l’état Disponible.',
      ronaToast: 'Une demande n’a pas reçu de réponse à temps : vous êtes à l’état RONA.',
      setAvailable: 'Passer à Disponible',
      requests: 'Demandes',
      noRequests: 'Aucune demande en attente.',
      conversations: 'Conversations',
      noConversations: 'Aucune conversation pour l’instant.',
      selectConversation: 'Acceptez une demande ou choisissez une conversation à gauche.',
      actions: 'Actions',
      transfer: 'Transférer',
      conference: 'Conférence',
      endConference: 'Terminer la conférence',
      leaveConference: 'Quitter la conférence',
      end: 'Terminer',
      wrapUp: 'Post-appel',
      yourMessage: 'Votre message',
      composePlaceholder: 'Saisissez votre réponse — Entrée pour envoyer, Maj+Entrée pour aller à la ligne',
      send: 'Envoyer',
      details: 'Détails',
      cadVariables: 'Variables CAD',
      loginTitle: 'Poste agent',
      tenant: 'Locataire',
      agent: 'Agent',
      password: 'Mot de passe',
      login: 'Se connecter',
      loginMissing: 'Saisissez le locataire, votre identifiant d’agent et votre mot de passe.',
      loginRefused: 'Locataire, agent ou mot de passe incorrect.',
      sessionExpired: 'Votre session n’est plus valide (le serveur a peut-être redémarré). Reconnectez-vous : l’écran reste affiché jusque-là.',
      loggedOutMessage: 'Vous êtes déconnecté.',
      transferRequest: 'Demande de transfert',
      transferTo: 'Transférer vers',
      queue: 'File d’attente',
      search: 'Rechercher',
      searchPlaceholder: 'Rechercher…',
      refresh: 'Actualiser les files d’attente et les agents',
      cancel: 'Annuler',
      conferenceRequest: 'Demande de conférence',
      wrapupReasons: 'Raisons du post-appel',
      later: 'Plus tard',
      submitWrapup: 'Soumettre le post-appel',
      connected: 'Connecté',
      offline: 'Hors ligne',
      reconnecting: 'Reconnexion…',
      networkError: 'Le serveur est injoignable. Réessayez dans un instant.',
      httpError: 'Le serveur a répondu par une erreur ({status}).',
      newRequest: 'Nouvelle demande',
      offerKind_queue: 'Nouvelle demande',
      offerKind_transfer: 'Transférée vers vous',
      offerKind_conference: 'Invitation à une conférence',
      sinceReceived: 'Temps écoulé depuis la réception de la conversation',
      customer: 'Client',
      source: 'Source',
      accept: 'Accepter',
      acceptFrom: 'Accepter la demande de {name}',
      offerWithdrawn: 'La demande de {name} a été retirée ({reason}).',
      rescind_timeout: 'sans réponse à temps',
      rescind_agent_unavailable: 'vous n’êtes pas disponible',
      rescind_interrupted: 'interrompue par un administrateur',
      rescind_ended: 'la conversation est terminée',
      rescind_cancelled: 'annulée',
      'rescind_undefined': 'retirée',
      conferenceCancelled: '{name} n’a pas rejoint la conférence.',
      youLeft: 'Vous avez quitté la conversation avec {name}.',
      interruptedToast: 'Conversation avec {name} interrompue : {reason}.',
      deliveryFailed: "Votre réponse à {name} n'a pas été remise.",
      notDelivered: 'Non remis',
      attLocation: 'Position',
      attLink: 'Lien',
      attFile: 'Fichier',
      attVideo: 'Vidéo',
      attAudio: 'Audio',
      attOpen: 'Ouvrir en taille réelle',
      attDownload: 'Télécharger',
      attUnavailable: 'Pièce jointe indisponible',
      interruptedGeneric: 'un administrateur a supprimé une ressource de cette conversation',
      interruptedAlert: 'Cette conversation a été interrompue : {reason}. Vous ne pouvez pas la poursuivre ; terminez-la.',
      wrapupNeeded: 'Post-appel à faire pour la conversation avec {name}.',
      wrapupFor: 'Conversation avec {name}',
      wrapupDone: 'Post-appel enregistré.',
      phase_offered: 'Proposée',
      phase_queued: 'En file',
      phase_active: 'Active',
      phase_conference_requested: 'Conférence demandée',
      phase_conference: 'Conférence',
      phase_conference_guest: 'Conférence (invité)',
      phase_interrupted: 'Interrompue',
      phase_ended: 'Terminée',
      phase_transferred: 'Transférée',
      phase_wrapped_up: 'Clôturée',
      phase_dropped: 'Fermée',
      phase_wrapup: 'Post-appel',
      unread: '{n} non lus',
      you: 'Vous',
      noSelection: 'Aucune conversation choisie.',
      channel: 'Canal',
      webchat: 'Chat web',
      received: 'Reçue à',
      elapsed: 'Depuis la réception',
      participants: 'Agents',
      invited: 'invité',
      cad_contact_origin: 'Origine du contact',
      cad_entry_point: 'Point d’entrée',
      cad_customer_name: 'Nom du client',
      counterLabel: '{n} caractères sur {max}',
      tooLong: 'Votre message dépasse {max} caractères.',
      nothingFound: 'Aucun résultat.',
      waiting: '{n} en attente',
      notAvailable: 'ne peut pas la prendre',
      pickTarget: 'Choisissez une file d’attente ou un agent.',
      pickAgent: 'Choisissez un agent.',
      pickReason: 'Choisissez une raison de post-appel.',
      dismiss: 'Fermer',
      chatTitle: 'Discutez avec nous',
      chatIntro: 'Posez votre question : un agent vous répondra ici.',
      yourName: 'Votre nom',
      namePlaceholder: 'Facultatif',
      chatPlaceholder: 'Saisissez votre message — Entrée pour envoyer',
      chatMessages: 'Conversation',
      agentJoined: '{name} a rejoint la discussion.',
      agentLeft: '{name} a quitté la discussion.',
      chatEnded: 'La conversation est terminée. Écrivez de nouveau pour en commencer une autre.',
      chatConnected: 'En ligne',
      chatReady: 'Prêt',
      chatSent: 'Envoyé',
      chatNewConversation: 'Nouvelle conversation'
    }
  };

  var KEY = 'switchboard.lang';

  function initialLang() {
    var saved = null;
    try { saved = localStorage.getItem(KEY); } catch (e) { saved = null; }
    if (saved && STRINGS[saved]) return saved;
    var nav = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
    return String(nav).toLowerCase().indexOf('fr') === 0 ? 'fr' : 'en';
  }

  var current = initialLang();

  function t(key, vars) {
    var table = STRINGS[current] || STRINGS.en;
    var s = Object.prototype.hasOwnProperty.call(table, key) ? table[key]
      : Object.prototype.hasOwnProperty.call(STRINGS.en, key) ? STRINGS.en[key] : key;
    if (vars) {
      s = s.replace(/\{(\w+)\}/g, function (m, name) {
        return Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : m;
      });
    }
    return s;
  }

  function apply(root) {
    document.documentElement.lang = current;
    root.querySelectorAll('[data-i18n]').forEach(function (e) { e.textContent = t(e.dataset.i18n); });
    root.querySelectorAll('[data-i18n-placeholder]').forEach(function (e) { e.placeholder = t(e.dataset.i18nPlaceholder); });
    root.querySelectorAll('[data-i18n-aria-label]').forEach(function (e) { e.setAttribute('aria-label', t(e.dataset.i18nAriaLabel)); });
    root.querySelectorAll('[data-i18n-title]').forEach(function (e) { e.title = t(e.dataset.i18nTitle); });
  }

  function setLang(lang) {
    if (!STRINGS[lang]) return;
    current = lang;
    try { localStorage.setItem(KEY, lang); } catch (e) { /* private mode */ }
    apply(document);
  }

  window.SwitchboardI18n = {
    t: t,
    apply: apply,
    setLang: setLang,
    lang: function () { return current; },
    has: function (key) { return Object.prototype.hasOwnProperty.call(STRINGS.en, key); },
    // More strings (the console's): `{en: {...}, fr: {...}}`.
    extend: extend
  };

  function extend(more) {
    Object.keys(more).forEach(function (lang) {
      if (!STRINGS[lang]) return;
      Object.keys(more[lang]).forEach(function (k) { STRINGS[lang][k] = more[lang][k]; });
    });
  }
  extend({ en: { openConsole: 'Console' }, fr: { openConsole: 'Console' } });
})();
