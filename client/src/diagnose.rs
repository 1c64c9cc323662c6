//! [`Client::diagnose`]: the hub's view of its own health, as `warren doctor` shows it.

use warren_proto::v1::{DiagnoseReply, DiagnoseRequest};

use crate::{Client, Result};

impl Client {
    /// The hub's health: its history's integrity and size (checked afresh from the file),
    /// and how long each engine has been silent, with the settings that judge it.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let health = client.diagnose().await?;
    /// for engine in &health.engines {
    ///     println!("engine {} silent for {} ms", engine.id, engine.silent_ms);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn diagnose(&self) -> Result<DiagnoseReply> {
        self.call(|| {
            let mut control = self.control();
            async move { control.diagnose(DiagnoseRequest {}).await }
        })
        .await
    }
}
