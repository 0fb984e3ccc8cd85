/* Turning logits into scores and labelled top-k results. */
#include "vim-private.h"

#include <math.h>

void
vim_softmax (const float *logits, int n, float *probs)
{
  float max = -INFINITY;
  for (int i = 0; i < n; i++)
    max = fmaxf (max, logits[i]);
  double sum = 0;
  for (int i = 0; i < n; i++) {
    probs[i] = expf (logits[i] - max);
    sum += probs[i];
  }
  for (int i = 0; i < n; i++)
    probs[i] = (float) (probs[i] / sum);
}

int
vim_top_k (const VimModel *model, const float *scores, int n, int k,
    float threshold, VimClassScore *out)
{
  int count = 0;
  if (k <= 0 || n <= 0)
    return 0;
  /* insertion into a sorted list of at most k: k is small (top-5) */
  for (int i = 0; i < n; i++) {
    float s = scores[i];
    if (!(s >= threshold) || (count == k && s <= out[k - 1].score))
      continue;
    int pos = count < k ? count++ : k - 1;
    while (pos > 0 && out[pos - 1].score < s) {
      out[pos] = out[pos - 1];
      pos--;
    }
    out[pos].class_id = i;
    out[pos].score = s;
    out[pos].label = model ? vim_model_get_label (model, i) : NULL;
  }
  return count;
}
