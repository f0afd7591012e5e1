//! The system lines the engine writes into transcripts and the notices
//! customers are shown, in the tenant's language (`language = "en" | "fr"`
//! in its configuration). The French wording follows the agent desktop's
//! French screens. Lines are chosen when the event is made, so the journal
//! keeps them as they were shown.

use crate::model::DeliveryFailure;
use serde::{Deserialize, Serialize};

/// A tenant's language for what the system says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Fr,
}

use Language::{En, Fr};

/// "{name} joined the conversation".
pub fn joined(l: Language, name: &str) -> String {
    match l {
        En => format!("{name} joined the conversation"),
        Fr => format!("{name} a rejoint la conversation"),
    }
}

/// "{name} left the conversation".
pub fn left(l: Language, name: &str) -> String {
    match l {
        En => format!("{name} left the conversation"),
        Fr => format!("{name} a quitté la conversation"),
    }
}

/// "{name} transferred the conversation to queue {queue}".
pub fn transferred_to_queue(l: Language, name: &str, queue: &str) -> String {
    match l {
        En => format!("{name} transferred the conversation to queue {queue}"),
        Fr => format!("{name} a transféré la conversation vers la file {queue}"),
    }
}

/// "{name} transferred the conversation to {agent}".
pub fn transferred_to_agent(l: Language, name: &str, agent: &str) -> String {
    match l {
        En => format!("{name} transferred the conversation to {agent}"),
        Fr => format!("{name} a transféré la conversation à {agent}"),
    }
}

/// Why a conversation was interrupted when its queue was deleted.
pub fn queue_deleted_reason(l: Language, queue: &str) -> String {
    match l {
        En => format!("queue {queue} was deleted by an administrator"),
        Fr => format!("la file {queue} a été supprimée par un administrateur"),
    }
}

/// The system line of a conversation interrupted by its queue's deletion.
pub fn queue_deleted_line(l: Language, queue: &str) -> String {
    match l {
        En => format!(
            "The queue {queue} was deleted by an administrator: this conversation can only be ended."
        ),
        Fr => format!(
            "La file {queue} a été supprimée par un administrateur : cette conversation peut seulement être terminée."
        ),
    }
}

/// "{name} did not accept the transfer: back in queue".
pub fn transfer_declined(l: Language, name: &str) -> String {
    match l {
        En => format!("{name} did not accept the transfer: back in queue"),
        Fr => format!("{name} n'a pas accepté le transfert : retour dans la file"),
    }
}

/// "Closed by {name}: {reason}" (a supervisor closed it).
pub fn closed_by(l: Language, name: &str, reason: &str) -> String {
    match l {
        En => format!("Closed by {name}: {reason}"),
        Fr => format!("Fermée par {name} : {reason}"),
    }
}

/// The system line after a reply that did not reach the customer.
pub fn delivery_notice(l: Language, why: DeliveryFailure) -> &'static str {
    use DeliveryFailure as D;
    match (l, why) {
        (En, D::NoAdapter) => "The last reply was not delivered: no adapter serves this channel.",
        (En, D::AdapterFailed) => "The last reply was not delivered: the channel adapter failed.",
        (En, D::InvalidRequest) => {
            "The last reply was not delivered: the channel adapter built an invalid request."
        }
        (En, D::Rejected) => "The last reply was not delivered: the channel refused it.",
        (En, D::Unavailable) => "The last reply was not delivered: the channel kept failing.",
        (En, D::Unreachable) => {
            "The last reply was not delivered: the channel could not be reached."
        }
        (Fr, D::NoAdapter) => {
            "La dernière réponse n'a pas été remise : aucun adaptateur ne sert ce canal."
        }
        (Fr, D::AdapterFailed) => {
            "La dernière réponse n'a pas été remise : l'adaptateur du canal a échoué."
        }
        (Fr, D::InvalidRequest) => {
            "La dernière réponse n'a pas été remise : l'adaptateur du canal a produit une requête invalide."
        }
        (Fr, D::Rejected) => "La dernière réponse n'a pas été remise : le canal l'a refusée.",
        (Fr, D::Unavailable) => {
            "La dernière réponse n'a pas été remise : le canal a échoué à chaque essai."
        }
        (Fr, D::Unreachable) => {
            "La dernière réponse n'a pas été remise : le canal est injoignable."
        }
    }
}

/// What a web chat customer is told while being transferred.
pub fn customer_transferred(l: Language) -> &'static str {
    match l {
        En => "You are being transferred to another agent. Please stay with us.",
        Fr => "Vous allez être mis en relation avec un autre conseiller. Merci de patienter.",
    }
}

/// What a web chat customer is told when its conversation is interrupted.
pub fn customer_interrupted(l: Language) -> &'static str {
    match l {
        En => "This conversation was interrupted. Please write again to start a new one.",
        Fr => "Cette conversation a été interrompue. Écrivez-nous à nouveau pour en commencer une autre.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_exists_in_both_languages_and_differs() {
        for why in [
            DeliveryFailure::NoAdapter,
            DeliveryFailure::AdapterFailed,
            DeliveryFailure::InvalidRequest,
            DeliveryFailure::Rejected,
            DeliveryFailure::Unavailable,
            DeliveryFailure::Unreachable,
        ] {
            assert_ne!(delivery_notice(En, why), delivery_notice(Fr, why));
        }
        assert_eq!(joined(Fr, "Alice"), "Alice a rejoint la conversation");
        assert_ne!(customer_interrupted(En), customer_interrupted(Fr));
    }
}
