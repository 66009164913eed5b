//! Which Kubernetes API the command line talks to, resolved the way kubectl resolves it: `--kubeconfig`, else
//! `$KUBECONFIG` (a list of files, merged) or `~/.kube/config`, else the in-cluster service account; the
//! context from `--context`, else the kubeconfig's current context; the namespace from `-n/--namespace`, else
//! the context's, else `default`.

use anyhow::{Context as _, Result, anyhow, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};

/// A Kubernetes client with the context and namespace it was resolved for (named in error messages).
pub struct KubeContext {
    pub client: kube::Client,
    /// The context's name, or `in-cluster`.
    pub context: String,
    /// `-n/--namespace`, else the context's namespace, else `default`.
    pub namespace: String,
}

/// What the user asked for on the command line.
#[derive(Clone, Copy, Debug, Default)]
pub struct KubeSelection<'a> {
    pub kubeconfig: Option<&'a Path>,
    pub context: Option<&'a str>,
    pub namespace: Option<&'a str>,
}

/// Resolves the selection to a client, as kubectl would.
pub async fn resolve(selection: KubeSelection<'_>) -> Result<KubeContext> {
    let Some(kubeconfig) = read_kubeconfig(selection.kubeconfig)? else {
        if let Some(context) = selection.context {
            bail!(
                "no kubeconfig to find context {context} in: pass --kubeconfig or set KUBECONFIG (default: ~/.kube/config)"
            );
        }
        let config = kube::Config::incluster().map_err(|_| {
            anyhow!(
                "no kubeconfig and not running in a cluster: pass --kubeconfig or set KUBECONFIG (default: ~/.kube/config)"
            )
        })?;
        let namespace = selection
            .namespace
            .map_or_else(|| config.default_namespace.clone(), str::to_owned);
        return Ok(KubeContext {
            client: kube::Client::try_from(config)?,
            context: "in-cluster".to_owned(),
            namespace,
        });
    };
    let context = match selection.context {
        Some(name) => name.to_owned(),
        None => kubeconfig
            .current_context
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "the kubeconfig has no current context: pass --context (`kubectl config get-contexts` lists them)"
                )
            })?,
    };
    if !kubeconfig.contexts.iter().any(|c| c.name == context) {
        bail!("context {context} is not in the kubeconfig (`kubectl config get-contexts` lists them)");
    }
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("cannot use context {context} of the kubeconfig"))?;
    let namespace = selection
        .namespace
        .map_or_else(|| config.default_namespace.clone(), str::to_owned);
    Ok(KubeContext {
        client: kube::Client::try_from(config)?,
        context,
        namespace,
    })
}

/// The kubeconfig: the file given, else `$KUBECONFIG`'s files merged, else `~/.kube/config`; `None` when none
/// of these exists (an unreadable or invalid one is an error).
fn read_kubeconfig(path: Option<&Path>) -> Result<Option<Kubeconfig>> {
    if let Some(path) = path {
        return Kubeconfig::read_from(path)
            .map(Some)
            .with_context(|| format!("cannot read kubeconfig {}", path.display()));
    }
    let from_env =
        std::env::var_os("KUBECONFIG").is_some_and(|v| std::env::split_paths(&v).any(|p| !p.as_os_str().is_empty()));
    if from_env {
        return Kubeconfig::read()
            .map(Some)
            .context("cannot read the kubeconfig named by $KUBECONFIG");
    }
    let default = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube").join("config"));
    match default {
        Some(path) if path.is_file() => Kubeconfig::read_from(&path)
            .map(Some)
            .with_context(|| format!("cannot read kubeconfig {}", path.display())),
        _ => Ok(None),
    }
}
