//! A multi-turn chat over one engine, as `ollama run` holds it: the whole conversation rendered
//! under the model's chat template each turn, the KV cache kept between turns so that only the
//! new turn is evaluated (the engine reuses the prefix its slot already holds).

use crate::chat::Message;
use crate::engine::{Engine, GenerateOptions, Output};
use crate::error::Result;

/// The conversation so far, its system message and the options each answer is generated with.
pub struct Session {
    pub system: Option<String>,
    pub opts: GenerateOptions,
    turns: Vec<Message>,
}

impl Session {
    pub fn new(opts: GenerateOptions) -> Session {
        Session { system: None, opts, turns: vec![] }
    }

    /// Forgets the conversation (`/clear`); the system message and options stay.
    pub fn clear(&mut self) {
        self.turns.clear();
    }

    /// Starts the conversation from earlier turns (a Modelfile's MESSAGEs).
    pub fn start_from(&mut self, turns: &[Message]) {
        self.turns = turns.to_vec();
    }

    /// The user and assistant turns so far.
    pub fn turns(&self) -> &[Message] {
        &self.turns
    }

    /// The messages of the next prompt: the system message, the turns, then `user`.
    fn messages(&self, user: &str) -> Vec<Message> {
        let system = self.system.iter().map(|s| Message::new("system", s));
        system.chain(self.turns.iter().cloned()).chain([Message::new("user", user)]).collect()
    }

    /// One exchange: the answer to `user`, its pieces given to `on_text` as they become final.
    /// `on_text` returning false stops the answer; what was said so far stays in the
    /// conversation, as the model's turn.
    pub fn turn(
        &mut self,
        engine: &mut Engine,
        user: &str,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Output> {
        let ids = engine.chat_ids(&self.messages(user))?;
        let out = engine.generate_while(&ids, &self.opts, on_text)?;
        self.turns.push(Message::new("user", user));
        self.turns.push(Message::new("assistant", &out.response));
        Ok(out)
    }
}
